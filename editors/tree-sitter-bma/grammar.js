/**
 * tree-sitter grammar for bma, mirroring grammar/bma.pest (the definition of the
 * syntax): same rules, same operator precedences, contextual section names.
 */
const PREC = { or: 1, and: 2, not: 3, cmp: 4, add: 5, mul: 6, neg: 7, pow: 8, post: 9 };

const commaSep = (rule) => optional(seq(rule, repeat(seq(',', rule)), optional(',')));

module.exports = grammar({
  name: 'bma',
  extras: ($) => [/\s/, $.doc_comment, $.line_comment, $.block_comment],
  word: ($) => $.identifier,

  rules: {
    source_file: ($) => repeat($._item),
    _item: ($) => choice($.use_item, $.block_item, $.fn_item, $.experiment),

    use_item: ($) =>
      seq('use', $.identifier, repeat(seq('::', $.identifier)), optional(seq('::', $.use_list))),
    use_list: ($) => seq('{', commaSep($.identifier), '}'),
    block_item: ($) =>
      seq('block', field('name', $.identifier), '(', commaSep($.param_decl), ')', field('body', $.model_body)),
    fn_item: ($) =>
      seq('fn', field('name', $.identifier), '(', commaSep($.param_decl), ')',
        optional(seq('->', $.type_name)), '=', field('body', $._expr)),
    param_decl: ($) =>
      seq(field('name', $.identifier), optional(seq(':', $.type_name)), optional(seq('=', $._expr))),
    type_name: (_) => choice('int', 'float', 'bool', 'layer', 'symbol', 'string'),

    experiment: ($) => seq('experiment', field('name', $.identifier), '{', repeat($._section), '}'),
    _section: ($) =>
      choice($.data_section, $.space_section, $.model_section, $.train_section,
        $.objective_section, $.search_section, $.average_section, $.report_section, $.trial_section),
    data_section: ($) => seq('data', '=', $._expr),
    space_section: ($) => seq('space', '{', repeat($._space_item), '}'),
    model_section: ($) => seq('model', $.model_body),
    train_section: ($) => seq('train', '{', repeat($.assign), '}'),
    objective_section: ($) =>
      seq('objective', '{', repeat(choice($.maximize, $.minimize, $.require, $.assign)), '}'),
    search_section: ($) => seq('search', '{', repeat($.assign), '}'),
    average_section: ($) => seq('average', '{', repeat($._expr), '}'),
    report_section: ($) => seq('report', '{', repeat($.assign), '}'),
    assign: ($) => seq(field('key', $.identifier), '=', field('value', $._expr)),
    // `trial { command = [...], env = { KEY: "value" }, reports = [accuracy] }`.
    trial_section: ($) => seq('trial', '{', repeat(choice($.record_assign, $.assign)), '}'),
    record_assign: ($) =>
      seq(field('key', $.identifier), '=', '{', optional(seq($.record_field, repeat(seq(',', $.record_field)), optional(','))), '}'),
    record_field: ($) => seq(field('name', $.identifier), ':', field('value', $._expr)),

    _space_item: ($) => choice($.when_item, $.let_item, $.param_item, $.const_item),
    param_item: ($) => seq(field('name', $.identifier), ':', optional($.type_name), 'in', $._domain),
    const_item: ($) => seq(field('name', $.identifier), '=', $._expr),
    let_item: ($) => seq('let', field('name', $.identifier), '=', $._expr),
    when_item: ($) => seq('when', $._expr, '{', repeat($._space_item), '}'),
    _domain: ($) => choice($.choice, $.range),
    choice: ($) => seq('{', commaSep($._expr), '}'),
    range: ($) =>
      prec.right(seq($._expr, $.range_op, $._expr, repeat(choice($.log_modifier, $.step_modifier)))),
    range_op: (_) => choice('..', '..='),
    log_modifier: (_) => 'log',
    step_modifier: ($) => seq('step', $._expr),

    model_body: ($) => seq('{', repeat($._model_stmt), '}'),
    _model_stmt: ($) =>
      choice($.repeat_stmt, $.match_stmt, $.if_stmt, $.residual_stmt, $.parallel_stmt, $.let_node, $.chain),
    repeat_stmt: ($) => seq('repeat', choice($.repeat_range, $._expr), $.model_body),
    repeat_range: ($) => seq(field('name', $.identifier), 'in', $._expr, $.range_op, $._expr),
    match_stmt: ($) => seq('match', $._expr, '{', repeat(seq($.stmt_arm, optional(','))), '}'),
    stmt_arm: ($) => seq($.pattern, '=>', $.model_body),
    if_stmt: ($) => seq('if', $._expr, $.model_body, optional(seq('else', choice($.if_stmt, $.model_body)))),
    residual_stmt: ($) => seq('residual', $.model_body),
    parallel_stmt: ($) => seq('parallel', '(', $.identifier, ')', '{', repeat($.model_body), '}'),
    let_node: ($) => seq('let', field('name', $.identifier), '=', $.chain),
    chain: ($) => prec.right(seq($.layer_call, repeat(seq('->', $.layer_call)))),
    layer_call: ($) => prec.right(seq(field('name', $.identifier), optional($.arguments))),

    maximize: ($) => prec.right(seq('maximize', optional($.objective_name), $._expr, optional($.on_split))),
    minimize: ($) => prec.right(seq('minimize', optional($.objective_name), $._expr, optional($.on_split))),
    // `minimize loss = a^2 + b^2`: the objective's name.
    objective_name: ($) => seq(field('name', $.identifier), '='),
    on_split: ($) => seq('on', $.identifier),
    require: ($) => seq('require', $._expr),

    _expr: ($) =>
      choice($.binary_expr, $.unary_expr, $.call_expr, $.field_expr, $.number, $.string, $.boolean,
        $.list, $.paren_expr, $.if_expr, $.match_expr, $.identifier),
    binary_expr: ($) =>
      choice(
        ...[
          ['or', PREC.or], ['and', PREC.and],
          ['==', PREC.cmp], ['!=', PREC.cmp], ['<=', PREC.cmp], ['>=', PREC.cmp], ['<', PREC.cmp], ['>', PREC.cmp],
          ['+', PREC.add], ['-', PREC.add], ['*', PREC.mul], ['/', PREC.mul], ['%', PREC.mul],
        ].map(([op, p]) => prec.left(p, seq(field('left', $._expr), field('operator', op), field('right', $._expr)))),
        prec.right(PREC.pow, seq(field('left', $._expr), field('operator', '^'), field('right', $._expr))),
      ),
    unary_expr: ($) =>
      choice(prec(PREC.neg, seq(field('operator', '-'), $._expr)), prec(PREC.not, seq(field('operator', 'not'), $._expr))),
    call_expr: ($) => prec(PREC.post, seq(field('function', $._expr), $.arguments)),
    field_expr: ($) => prec(PREC.post, seq($._expr, '.', field('field', $.identifier))),
    arguments: ($) => seq('(', commaSep($.argument), ')'),
    argument: ($) => seq(optional(seq(field('name', $.identifier), ':')), $._expr),
    list: ($) => seq('[', commaSep($._expr), ']'),
    paren_expr: ($) => seq('(', $._expr, ')'),
    if_expr: ($) =>
      seq('if', $._expr, '{', $._expr, '}', 'else', choice($.if_expr, seq('{', $._expr, '}'))),
    match_expr: ($) => seq('match', $._expr, '{', commaSep($.expr_arm), '}'),
    expr_arm: ($) => seq($.pattern, '=>', $._expr),
    pattern: ($) => seq($._pattern_alt, repeat(seq('|', $._pattern_alt))),
    _pattern_alt: ($) => choice($.wildcard, $.number, $.string, $.boolean, $.identifier),
    wildcard: (_) => '_',

    number: (_) =>
      token(seq(/\d[\d_]*/, optional(/\.\d[\d_]*/), optional(/[eE][+-]?\d+/),
        optional(choice('us', 'ms', 'min', 's', 'h', 'k', 'M')))),
    string: (_) => token(seq('"', repeat(choice(/[^"\\\n]/, /\\./)), '"')),
    boolean: (_) => choice('true', 'false'),
    identifier: (_) => /[A-Za-z_][A-Za-z0-9_]*/,
    // `///` starts a doc comment, `////` (or more) a plain one, as in `src/syntax.rs`: the
    // longer match wins, so neither token needs a precedence.
    doc_comment: (_) => token(seq('///', optional(seq(/[^\/\n]/, /.*/)))),
    line_comment: (_) => token(choice(seq('//', optional(seq(/[^\/\n]/, /.*/))), seq('////', /.*/))),
    block_comment: (_) => token(seq('/*', /[^*]*\*+([^/*][^*]*\*+)*/, '/')),
  },
});
