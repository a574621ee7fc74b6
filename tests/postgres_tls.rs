//! The PostgreSQL store over TLS, against the test server, which
//! `scripts/pg-test-server.sh start` runs with a certificate for `localhost` signed by a
//! throwaway CA (`$BMA_PG_DIR/tls/ca.crt`) and leaves an unrelated CA beside it
//! (`wrong-ca.crt`). Whether a connection really is encrypted is read from the server
//! (`pg_stat_ssl`), over a plain connection of the test's own.
//!
//! Needs `BMA_TEST_POSTGRES` and `BMA_PG_DIR`; the rule of `tests/common` (fails under
//! `CI` without them, skipped loudly elsewhere).

use std::path::PathBuf;
use std::time::Duration;

use bma::store::{Postgres, Store, StoreError};

mod common;
mod store_suite;

/// The test server's URL and its TLS folder; a folder without the certificates is a
/// server started by an older script: a failure, never a pass.
fn server(what: &str) -> Option<(String, PathBuf)> {
    let url = common::url(what)?;
    let tls = PathBuf::from(common::pg_dir(what)?).join("tls");
    assert!(
        tls.join("ca.crt").is_file() && tls.join("wrong-ca.crt").is_file(),
        "{} has no ca.crt/wrong-ca.crt: restart the server with this scripts/pg-test-server.sh",
        tls.display()
    );
    Some((url, tls))
}

/// `url` (`postgres://bma@127.0.0.1:PORT/bma`) with `host` for the address and `query`.
fn with(url: &str, host: &str, query: &str) -> String {
    format!("{}?{query}", url.replace("127.0.0.1", host))
}

/// Whether the connection the store opened under `app` is encrypted, as the server sees it.
fn encrypted(url: &str, app: &str) -> bool {
    let row = common::client(url)
        .query_one(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
            &[&app],
        )
        .expect("the store's connection, by its application name");
    row.get(0)
}

fn refused(url: &str) -> String {
    // A long retry window: a TLS failure must end at once, not be retried as an outage.
    match Postgres::connect_with(url, 1, Duration::from_secs(600)) {
        Ok(_) => panic!("{url} connected"),
        Err(StoreError::Backend(m)) => m,
        Err(e) => panic!("{url}: not a backend error: {e}"),
    }
}

#[test]
fn verify_full_with_the_servers_ca_connects_encrypted_and_works() {
    let Some((url, tls)) = server("postgres_tls::verify_full") else { return };
    let app = common::unique("tls-full");
    let ca = tls.join("ca.crt");
    let store = Postgres::connect(&with(
        &url,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}&application_name={app}", ca.display()),
    ))
    .expect("verify-full with the server's CA");
    assert!(encrypted(&url, &app), "the verify-full connection is not encrypted");
    let spec = store_suite::spec(&common::unique("tls"), "x");
    let study = store.open(&spec).expect("open a study over TLS");
    let claim = store.claim(study.id, "w", None).expect("claim over TLS").expect("a trial");
    assert_eq!(claim.number, 0);
}

#[test]
fn verify_full_with_another_ca_fails_at_once_naming_the_ca() {
    let Some((url, tls)) = server("postgres_tls::wrong_ca") else { return };
    let wrong = tls.join("wrong-ca.crt");
    let bad = with(&url, "localhost", &format!("sslmode=verify-full&sslrootcert={}", wrong.display()));
    let m = refused(&bad);
    assert!(
        m.contains("TLS with localhost failed: the server's certificate is not signed by the CA in sslrootcert=")
            && m.contains("wrong-ca.crt"),
        "{m}"
    );
    // The command line says the same, and fails.
    let out = common::bma().args(["ls", "--store", &bad]).output().expect("run bma ls");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "bma ls connected: {stderr}");
    assert!(stderr.contains("is not signed by the CA in sslrootcert="), "{stderr}");
    // Without sslrootcert, verify-full checks against Mozilla's roots, which never signed a test CA.
    let m = refused(&with(&url, "localhost", "sslmode=verify-full"));
    assert!(m.contains("is not signed by Mozilla's root CAs (no sslrootcert given)"), "{m}");
}

#[test]
fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let Some((url, tls)) = server("postgres_tls::host_name") else { return };
    let ca = tls.join("ca.crt");
    // The certificate names `localhost`, not the address.
    let m = refused(&with(&url, "127.0.0.1", &format!("sslmode=verify-full&sslrootcert={}", ca.display())));
    assert!(m.contains("does not name the host `127.0.0.1`") && m.contains("verify-ca"), "{m}");
    let app = common::unique("tls-ca");
    let _store = Postgres::connect(&with(
        &url,
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={}&application_name={app}", ca.display()),
    ))
    .expect("verify-ca by address");
    assert!(encrypted(&url, &app));
    // verify-ca still checks the chain.
    let wrong = tls.join("wrong-ca.crt");
    let m = refused(&with(&url, "127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={}", wrong.display())));
    assert!(m.contains("is not signed by the CA in sslrootcert="), "{m}");
}

#[test]
fn require_and_prefer_encrypt_without_a_ca_and_disable_does_not() {
    let Some((url, _)) = server("postgres_tls::modes") else { return };
    for (mode, want) in [("require", true), ("prefer", true), ("disable", false)] {
        let app = common::unique(&format!("tls-{mode}"));
        let _store = Postgres::connect(&with(&url, "127.0.0.1", &format!("sslmode={mode}&application_name={app}")))
            .unwrap_or_else(|e| panic!("sslmode={mode}: {e}"));
        assert_eq!(encrypted(&url, &app), want, "sslmode={mode}");
    }
    // No sslmode is prefer, as in libpq: the test server offers TLS, so it is taken.
    let app = common::unique("tls-default");
    let _store = Postgres::connect(&with(&url, "127.0.0.1", &format!("application_name={app}"))).expect("default");
    assert!(encrypted(&url, &app), "the default (prefer) did not take the TLS the server offers");
}

#[test]
fn a_bad_tls_setting_is_refused_before_connecting() {
    let Some((url, tls)) = server("postgres_tls::settings") else { return };
    let m = refused(&with(&url, "localhost", "sslmode=verify"));
    assert!(m.starts_with("bad PostgreSQL URL") && m.contains("unknown sslmode `verify`"), "{m}");
    let missing = tls.join("no-such.crt");
    let m = refused(&with(&url, "localhost", &format!("sslmode=verify-full&sslrootcert={}", missing.display())));
    assert!(m.contains("cannot read sslrootcert=") && m.contains("no-such.crt"), "{m}");
}
