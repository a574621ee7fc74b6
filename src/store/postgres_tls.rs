//! TLS for the PostgreSQL store: the `sslmode` and `sslrootcert` of a store URL, read as
//! libpq reads them, and a rustls connector (ring; no system OpenSSL) for them.
//!
//! Takes a store URL (`postgres://...?sslmode=verify-full&sslrootcert=ca.pem`, or the
//! `key=value` form); gives the URL without the settings the `postgres` crate does not
//! know, the [`Tls`] they asked for, and from it the connector and the crate's own
//! `sslmode` ([`Tls::connector`], [`Tls::ssl_mode`]). [`explain`] turns a failed TLS
//! handshake into a message that names the cause and the setting to change.
//!
//! The modes, as libpq's: `disable` (plain), `prefer` (the default: TLS when the server
//! offers it, plain otherwise), `require` (TLS or no connection), both without checking
//! the server's certificate unless `sslrootcert` is given (then as `verify-ca`);
//! `verify-ca` (the certificate chains to a root CA) and `verify-full` (and names the
//! host connected to). The root CAs are the PEM file `sslrootcert` names, or, when it
//! is absent or `system`, Mozilla's roots (webpki-roots, built in: nothing is read from
//! the machine or the environment). Client certificates (`sslcert`, `sslkey`) are not
//! supported and are refused by name rather than ignored.
//!
//! **Invariants:** a `verify-*` mode never connects without a certificate that chains to
//! its roots (and, for `verify-full`, names the host); a setting bma does not support
//! is an error naming it, never silently dropped.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// `sslmode`, as libpq names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(text: &str) -> Result<Mode, String> {
        Ok(match text {
            "disable" => Mode::Disable,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            "allow" => return Err("sslmode=allow is not supported: use prefer (TLS when offered) or disable".into()),
            other => {
                return Err(format!(
                    "unknown sslmode `{other}`: use disable, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }
}

/// What a store URL asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub mode: Mode,
    /// `sslrootcert`: a PEM file of root CAs; `None` for Mozilla's roots.
    pub root: Option<PathBuf>,
}

/// Splits the TLS settings off `url`: gives the URL the `postgres` crate reads (without
/// `sslmode`, `sslrootcert`) and the [`Tls`] asked for.
pub fn split(url: &str) -> Result<(String, Tls), String> {
    let mut mode = None;
    let mut root = None;
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => mode = Some(Mode::parse(value)?),
            "sslrootcert" => root = (value != "system").then(|| PathBuf::from(value)),
            "sslcert"
            | "sslkey"
            | "sslpassword"
            | "sslcrl"
            | "sslcrldir"
            | "sslsni"
            | "sslcompression"
            | "sslnegotiation"
            | "ssl_min_protocol_version"
            | "ssl_max_protocol_version" => {
                return Err(format!("`{key}` is not supported in a store URL (TLS takes sslmode and sslrootcert)"));
            }
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest =
        if let Some(q) = url.find('?').filter(|_| url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            let mut kept = Vec::new();
            for pair in url[q + 1..].split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if !take(&percent_decode(k)?, &percent_decode(v)?)? {
                    kept.push(pair);
                }
            }
            match kept.is_empty() {
                true => url[..q].to_string(),
                false => format!("{}?{}", &url[..q], kept.join("&")),
            }
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url.to_string()
        } else {
            // `host=... sslmode=...`: whitespace-separated pairs, a value maybe 'quoted'.
            let mut kept = Vec::new();
            for (raw, k, v) in key_values(url)? {
                if !take(&k, &v)? {
                    kept.push(raw);
                }
            }
            kept.join(" ")
        };
    Ok((rest, Tls { mode: mode.unwrap_or(Mode::Prefer), root }))
}

impl Tls {
    /// The `postgres` crate's own `sslmode` for this mode (it checks nothing itself).
    pub fn ssl_mode(&self) -> postgres::config::SslMode {
        match self.mode {
            Mode::Disable => postgres::config::SslMode::Disable,
            Mode::Prefer => postgres::config::SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => postgres::config::SslMode::Require,
        }
    }

    /// Whether the server's certificate is checked against the roots, and whether it must
    /// name the host too.
    fn checks(&self) -> (bool, bool) {
        match (self.mode, &self.root) {
            (Mode::VerifyFull, _) => (true, true),
            (Mode::VerifyCa, _) => (true, false),
            (Mode::Disable | Mode::Prefer | Mode::Require, Some(_)) => (true, false),
            (Mode::Disable | Mode::Prefer | Mode::Require, None) => (false, false),
        }
    }

    /// The connector: reads `sslrootcert` (an unreadable file or one without a
    /// certificate is an error naming it).
    pub fn connector(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let config = match self.checks() {
            (false, _) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
                .with_no_client_auth(),
            (true, full) => {
                let roots = Arc::new(self.roots()?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| format!("TLS: the root certificates cannot be used: {e}"))?;
                let verifier: Arc<dyn ServerCertVerifier> = if full { webpki } else { Arc::new(AnyName(webpki)) };
                builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth()
            }
        };
        Ok(MakeRustlsConnect::new(config))
    }

    fn roots(&self) -> Result<RootCertStore, String> {
        let Some(path) = &self.root else {
            return Ok(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() });
        };
        let shown = path.display();
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read sslrootcert={shown}: {e}"))?;
        let mut store = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&bytes) {
            let cert = cert.map_err(|e| format!("sslrootcert={shown} is not a PEM certificate file: {e}"))?;
            store
                .add(cert)
                .map_err(|e| format!("sslrootcert={shown} holds a certificate that cannot be a root: {e}"))?;
        }
        if store.is_empty() {
            return Err(format!("sslrootcert={shown} holds no certificate (a PEM file of root CAs is expected)"));
        }
        Ok(store)
    }

    /// How the certificate is checked, for messages.
    fn against(&self) -> String {
        match &self.root {
            Some(p) => format!("the CA in sslrootcert={}", p.display()),
            None => "Mozilla's root CAs (no sslrootcert given)".into(),
        }
    }
}

/// A message for a connection that failed in its TLS handshake, naming the cause and
/// what to change; `None` for any other failure (those may be retried).
pub fn explain(err: &postgres::Error, tls: &Tls, host: &str) -> Option<String> {
    let text = err.to_string();
    if !text.starts_with("error performing TLS handshake") {
        return None;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    let mut rustls_error = None;
    let mut last = None;
    while let Some(c) = cause {
        // rustls's error arrives inside an io::Error, whose `source` skips it.
        let inner = c.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).map(|e| e as &dyn std::error::Error);
        if let Some(r) = c.downcast_ref::<rustls::Error>().or_else(|| inner?.downcast_ref::<rustls::Error>()) {
            rustls_error = Some(r.clone());
        }
        last = Some(c.to_string());
        cause = c.source();
    }
    let detail = last.unwrap_or_default();
    let mode = tls.mode.as_str();
    let why = match rustls_error {
        Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            format!("the server's certificate is not signed by {}", tls.against())
        }
        Some(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => format!(
            "the server's certificate does not name the host `{host}` (sslmode={mode} checks it): connect by a \
             name the certificate holds, or use sslmode=verify-ca"
        ),
        Some(rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => "the server's certificate has expired".into(),
        Some(_) => format!("the TLS handshake failed ({detail})"),
        None if detail.contains("server does not support TLS") => {
            format!(
                "the server does not accept TLS, and sslmode={mode} requires it (its postgresql.conf needs ssl = on)"
            )
        }
        None => format!("the TLS handshake failed ({detail})"),
    };
    Some(format!("postgres: TLS with {host} failed: {why}"))
}

/// `require`/`prefer` without roots: encryption with no check of who answers, as libpq
/// does (the handshake's signatures are still verified).
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked as `verify-full` checks it, the host name is not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `%XX` decoded (a URL's query key or value).
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(b) = hex else { return Err(format!("bad %-escape in the store URL near `{}`", &text[i..])) };
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the store URL's query is not UTF-8 once decoded".to_string())
}

/// The pairs of a `key=value key2='v a l'` connection string: each pair's text as
/// written, its key and its value (unquoted, `\'` and `\\` unescaped).
fn key_values(text: &str) -> Result<Vec<(String, String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else { break };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            return Err(format!("`{key}` in the store's connection string has no `=value`"));
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        let mut end = text.len();
        if chars.next_if(|(_, c)| *c == '\'').is_some() {
            let mut closed = false;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '\'' => {
                        closed = true;
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("the value of `{key}` in the store's connection string has no closing quote"));
            }
        } else {
            while let Some((i, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                value.push(c);
                end = i + c.len_utf8();
            }
            if value.is_empty() {
                end = chars.peek().map_or(text.len(), |(i, _)| *i);
            }
        }
        out.push((text[start..end].to_string(), key, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_keeps_what_the_postgres_crate_reads_and_gives_the_tls_settings() {
        let (url, tls) =
            split("postgres://bma@db:5432/bma?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=5")
                .expect("split");
        assert_eq!(url, "postgres://bma@db:5432/bma?connect_timeout=5");
        assert_eq!(tls, Tls { mode: Mode::VerifyFull, root: Some(PathBuf::from("/etc/ca.pem")) });
        let (url, tls) = split("postgresql://bma@db/bma?sslmode=require").expect("split");
        assert_eq!((url.as_str(), tls.mode, tls.root), ("postgresql://bma@db/bma", Mode::Require, None));
        let (url, tls) = split("postgres://bma@db/bma").expect("split");
        assert_eq!((url.as_str(), tls.mode), ("postgres://bma@db/bma", Mode::Prefer));
        let (_, tls) = split("postgres://db/bma?sslmode=verify-ca&sslrootcert=system").expect("split");
        assert_eq!(tls, Tls { mode: Mode::VerifyCa, root: None });
    }

    #[test]
    fn a_key_value_string_keeps_its_other_pairs_as_written() {
        let (rest, tls) = split("host=db  user=bma sslmode=verify-full sslrootcert='/tmp/my ca.pem' password='a\\'b'")
            .expect("split");
        assert_eq!(rest, "host=db user=bma password='a\\'b'");
        assert_eq!(tls, Tls { mode: Mode::VerifyFull, root: Some(PathBuf::from("/tmp/my ca.pem")) });
        assert!(split("host=db sslmode").is_err_and(|e| e.contains("`sslmode`") && e.contains("=value")));
        assert!(split("host=db password='x").is_err_and(|e| e.contains("closing quote")));
    }

    #[test]
    fn unknown_modes_and_client_certificates_are_refused_by_name() {
        let e = split("postgres://db/bma?sslmode=verify_full").expect_err("a typo");
        assert!(e.contains("unknown sslmode `verify_full`") && e.contains("verify-full"), "{e}");
        let e = split("postgres://db/bma?sslmode=allow").expect_err("allow");
        assert!(e.contains("allow is not supported"), "{e}");
        let e = split("postgres://db/bma?sslmode=require&sslcert=c.pem").expect_err("a client certificate");
        assert!(e.contains("`sslcert` is not supported"), "{e}");
        let e = split("postgres://db/bma?sslrootcert=%zz").expect_err("a bad escape");
        assert!(e.contains("%-escape"), "{e}");
    }

    #[test]
    fn a_root_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = Tls { mode: Mode::VerifyFull, root: Some(dir.path().join("none.pem")) };
        let e = missing.connector().err().expect("a missing file");
        assert!(e.starts_with("cannot read sslrootcert=") && e.contains("none.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let e = Tls { mode: Mode::VerifyCa, root: Some(empty) }.connector().err().expect("no certificate");
        assert!(e.contains("holds no certificate"), "{e}");
        // Without roots to read, every mode makes a connector (Mozilla's roots for verify-*).
        for mode in [Mode::Disable, Mode::Prefer, Mode::Require, Mode::VerifyCa, Mode::VerifyFull] {
            assert!(Tls { mode, root: None }.connector().is_ok(), "{mode:?}");
        }
    }

    #[test]
    fn only_the_verify_modes_or_a_root_file_check_the_certificate() {
        let tls = |mode, root: Option<&str>| Tls { mode, root: root.map(PathBuf::from) };
        assert_eq!(tls(Mode::Require, None).checks(), (false, false));
        assert_eq!(tls(Mode::Prefer, None).checks(), (false, false));
        assert_eq!(tls(Mode::Require, Some("ca.pem")).checks(), (true, false));
        assert_eq!(tls(Mode::VerifyCa, None).checks(), (true, false));
        assert_eq!(tls(Mode::VerifyFull, Some("ca.pem")).checks(), (true, true));
    }
}
