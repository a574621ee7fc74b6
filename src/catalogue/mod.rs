//! The catalogue: every built-in name a model or a setting may use, one table per concept.
//!
//! Takes nothing; gives, per [`Concept`] (layers, optimisers, schedules, losses, inits,
//! early stopping, strategies, pruners, ensemble weights, averaging rules, ranks, metrics,
//! datasets),
//! one table of [`Entry`]s: the name, the typed signature (each argument's name, [`ArgType`]
//! and [`Need`]: required, optional, or its default) and a one-line doc. The checker
//! (`check`), hover and completion (`ide`), the docs test (`tests/docs.rs`: every entry is in
//! `docs/language.md`) and the runtime read these tables, and list the names nowhere else.
//!
//! **The constructors.** What a name builds at run time lives with what it builds, above this
//! module (`search::strategy`, `search::prune::from_setting`, `train::config`, `ir::layers`,
//! `final_model`, `data::load_raw`).
//! Each entry carries a typed kind (`Strategy::Tpe`); the runtime finds the entry by name and
//! builds with an exhaustive `match` on the kind. An entry added here needs a new kind
//! variant, which every such `match` must handle: an entry without a constructor does not
//! compile. That is the "constructor in the table", kept without this module importing the
//! modules above it.
//!
//! **Layering:** this module is plain data and uses nothing of bma, so every stage (`ir`
//! included) may read it.
//! **Invariant:** in each table, names are unique and kinds are unique (tested below).

mod augments;
mod datasets;
mod fields;
mod layers;
mod settings;
pub mod trial;

pub use augments::{AUGMENTS, Augment, augment_unfit};
pub use datasets::{AUDIO_FEATURES, AudioFeature, DATASETS, Dataset, FIXED_SPLITS};
pub use fields::DATA_FIELDS;
pub use layers::{LAYERS, Layer, is_layer, layer_signature};
pub use settings::{
    AVERAGES, Average, Better, EARLY_STOPS, EarlyStop, INITS, Init, Known, LOSSES, Loss, METRICS, Metric, OPTIMIZERS,
    Optimizer, PRECISIONS, PRUNERS, Precision, Pruner, RANKS, Rank, SCHEDULES, STRATEGIES, Schedule, Strategy, WEIGHTS,
    Weights, higher_is_better, metric_key, metric_name,
};

/// What an argument (or a setting) accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    Int,
    Number,
    Bool,
    Dur,
    Str,
    /// A metric name.
    Metric,
    /// One of these symbols.
    Syms(&'static [&'static str]),
    /// A list of parameter names.
    Params,
    /// A list of numbers.
    Numbers,
    /// An entry of another concept's table: `weights: softmax(accuracy)`.
    OneOf(Concept),
    /// Anything.
    Any,
}

/// Whether an argument must be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Required,
    /// May be left out; the runtime then decides.
    Optional,
    /// May be left out for this value, written as in the language (`3`, `same`, `kernel`).
    Default(&'static str),
}

/// One argument of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg {
    pub name: &'static str,
    pub ty: ArgType,
    pub need: Need,
}

/// How an entry is written, for hover and completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Its name and arguments: `conv2d(filters, kernel: 3)`, `tpe(startup:)`.
    Call,
    /// Takes any number of arguments, written so: `add(a, b, ...)`.
    Variadic(&'static str),
    /// The doc alone says it (`relu`: "an activation").
    Plain,
}

/// The name, signature and doc of one entry, whatever its concept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sig {
    pub name: &'static str,
    /// The arguments, positional order; required ones first.
    pub args: &'static [Arg],
    pub doc: &'static str,
    pub form: Form,
}

impl Sig {
    /// How many leading arguments are required.
    pub fn required(&self) -> usize {
        self.args.iter().take_while(|a| a.need == Need::Required).count()
    }
}

/// One row of a table: the typed kind the runtime matches on, and the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<K> {
    pub kind: K,
    pub sig: Sig,
}

/// The entry of `table` named `name`.
pub fn find<K>(table: &'static [Entry<K>], name: &str) -> Option<&'static Entry<K>> {
    table.iter().find(|e| e.sig.name == name)
}

/// The kind of the entry of `table` named `name`.
pub fn kind<K: Copy>(table: &'static [Entry<K>], name: &str) -> Option<K> {
    find(table, name).map(|e| e.kind)
}

/// The names of `table`, in order.
pub fn names<K>(table: &'static [Entry<K>]) -> Vec<&'static str> {
    table.iter().map(|e| e.sig.name).collect()
}

/// `a, b or c`: the names a message offers.
pub fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// `a, b(x:) or c`: every entry of `concept` as written, for a message.
pub fn written(concept: Concept) -> String {
    let all: Vec<String> =
        concept.sigs().into_iter().map(|s| usage(concept, s).unwrap_or_else(|| s.name.to_string())).collect();
    one_of(&all.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A concept with a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concept {
    Layer,
    Optimizer,
    Schedule,
    Loss,
    Init,
    EarlyStop,
    Strategy,
    Pruner,
    Weights,
    Average,
    Rank,
    Metric,
    Dataset,
    Augment,
    AudioFeature,
    Precision,
}

impl Concept {
    pub const ALL: [Concept; 16] = [
        Concept::Layer,
        Concept::Optimizer,
        Concept::Schedule,
        Concept::Loss,
        Concept::Init,
        Concept::EarlyStop,
        Concept::Strategy,
        Concept::Pruner,
        Concept::Weights,
        Concept::Average,
        Concept::Rank,
        Concept::Metric,
        Concept::Dataset,
        Concept::Augment,
        Concept::AudioFeature,
        Concept::Precision,
    ];

    /// The signatures of the concept's table, in order.
    pub fn sigs(self) -> Vec<&'static Sig> {
        fn of<K>(table: &'static [Entry<K>]) -> Vec<&'static Sig> {
            table.iter().map(|e| &e.sig).collect()
        }
        match self {
            Concept::Layer => of(LAYERS),
            Concept::Optimizer => of(OPTIMIZERS),
            Concept::Schedule => of(SCHEDULES),
            Concept::Loss => of(LOSSES),
            Concept::Init => of(INITS),
            Concept::EarlyStop => of(EARLY_STOPS),
            Concept::Strategy => of(STRATEGIES),
            Concept::Pruner => of(PRUNERS),
            Concept::Weights => of(WEIGHTS),
            Concept::Average => of(AVERAGES),
            Concept::Rank => of(RANKS),
            Concept::Metric => of(METRICS),
            Concept::Dataset => of(DATASETS),
            Concept::Augment => of(AUGMENTS),
            Concept::AudioFeature => of(AUDIO_FEATURES),
            Concept::Precision => of(PRECISIONS),
        }
    }

    /// The names of the concept's entries, in order.
    pub fn names(self) -> Vec<&'static str> {
        self.sigs().into_iter().map(|s| s.name).collect()
    }

    /// The heading of the section of `docs/language.md` that documents the concept.
    pub fn docs_section(self) -> &'static str {
        match self {
            Concept::Layer => "### Layers",
            Concept::Optimizer
            | Concept::Schedule
            | Concept::Loss
            | Concept::Init
            | Concept::EarlyStop
            | Concept::Augment
            | Concept::Precision => "## Train",
            Concept::Strategy | Concept::Pruner => "## Search",
            Concept::Weights | Concept::Average => "## Average",
            Concept::Rank | Concept::Metric => "## Objective",
            Concept::Dataset | Concept::AudioFeature => "## Data",
        }
    }
}

/// How `sig` is written: `conv2d(filters, kernel: 3, padding: same|valid)` for a layer,
/// `tpe(startup:)` for a setting; `None` for a [`Form::Plain`] entry.
pub fn usage(concept: Concept, sig: &Sig) -> Option<String> {
    match sig.form {
        Form::Plain => None,
        Form::Variadic(written) => Some(written.to_string()),
        Form::Call if sig.args.is_empty() => Some(sig.name.to_string()),
        Form::Call => {
            let args: Vec<String> = sig.args.iter().map(|a| written_arg(concept, a)).collect();
            Some(format!("{}({})", sig.name, args.join(", ")))
        }
    }
}

/// The one line an editor shows for `sig`: its usage and its doc.
pub fn describe(concept: Concept, sig: &Sig) -> String {
    match usage(concept, sig) {
        Some(u) => format!("{u}: {}", sig.doc),
        None => sig.doc.to_string(),
    }
}

/// How one argument of an entry of `concept` is written in its usage (`kernel: 3`, `units`).
pub fn written_arg(concept: Concept, a: &Arg) -> String {
    if concept != Concept::Layer {
        return format!("{}:", a.name);
    }
    match (a.need, a.ty) {
        (Need::Required, _) => a.name.to_string(),
        (_, ArgType::Syms(options)) => format!("{}: {}", a.name, options.join("|")),
        (Need::Default(d), _) => format!("{}: {d}", a.name),
        (Need::Optional, _) => format!("{}:", a.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique<T: PartialEq>(items: &[T]) -> bool {
        items.iter().enumerate().all(|(i, x)| !items[..i].contains(x))
    }

    fn kinds_unique<K: PartialEq + Copy>(table: &'static [Entry<K>]) -> bool {
        unique(&table.iter().map(|e| e.kind).collect::<Vec<_>>())
    }

    #[test]
    fn names_and_kinds_are_unique_in_every_table() {
        for c in Concept::ALL {
            assert!(unique(&c.names()), "{c:?} lists a name twice: {:?}", c.names());
        }
        assert!(kinds_unique(LAYERS) && kinds_unique(OPTIMIZERS) && kinds_unique(SCHEDULES));
        assert!(kinds_unique(LOSSES) && kinds_unique(INITS) && kinds_unique(EARLY_STOPS));
        assert!(kinds_unique(STRATEGIES) && kinds_unique(PRUNERS) && kinds_unique(WEIGHTS));
        assert!(kinds_unique(AVERAGES) && kinds_unique(RANKS) && kinds_unique(DATASETS));
        assert!(kinds_unique(AUDIO_FEATURES));
    }

    #[test]
    fn required_arguments_come_first() {
        for c in Concept::ALL {
            for s in c.sigs() {
                let required = s.args.iter().filter(|a| a.need == Need::Required).count();
                assert_eq!(required, s.required(), "`{}` has a required argument after an optional one", s.name);
            }
        }
    }

    #[test]
    fn usage_is_written_as_in_the_language() {
        let conv = find(LAYERS, "conv2d").map(|e| usage(Concept::Layer, &e.sig));
        assert_eq!(
            conv,
            Some(Some("conv2d(filters, kernel: 3, stride: 1, padding: same|valid, groups: 1)".to_string()))
        );
        let sub = find(STRATEGIES, "subspace").map(|e| describe(Concept::Strategy, &e.sig));
        assert_eq!(
            sub.as_deref(),
            Some("subspace(by:, samples:, eta:): partition by structural parameters, keep the best cells")
        );
        let relu = find(LAYERS, "relu").map(|e| describe(Concept::Layer, &e.sig));
        assert_eq!(relu.as_deref(), Some("an activation; keeps the shape"));
    }
}
