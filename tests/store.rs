//! The Store conformance suite (`tests/store_suite/`) against each backend: SQLite (an
//! in-memory database) and PostgreSQL (the test server, `BMA_TEST_POSTGRES`; without it
//! these fail under `CI` and are skipped, with a printed note, elsewhere).

mod common;
#[macro_use]
mod store_suite;

mod sqlite {
    use bma::store::Sqlite;

    macro_rules! on_sqlite {
        ($name:ident) => {
            #[test]
            fn $name() {
                let store = Sqlite::in_memory().expect("an in-memory store");
                super::store_suite::$name(&store, &super::common::unique(stringify!($name)));
            }
        };
    }

    for_each_store_test!(on_sqlite);
}

mod postgres {
    use bma::store::Postgres;

    macro_rules! on_postgres {
        ($name:ident) => {
            #[test]
            fn $name() {
                let Some(url) = super::common::url(concat!("store::postgres::", stringify!($name))) else {
                    return;
                };
                let store = Postgres::connect(&url).expect("connect to the test server");
                super::store_suite::$name(&store, &super::common::unique(stringify!($name)));
            }
        };
    }

    for_each_store_test!(on_postgres);
}
