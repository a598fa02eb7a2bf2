//! The CLI against a console behind TLS (the way it is meant to be run:
//! a TLS-terminating proxy in front, here one on loopback with a test
//! certificate): trusted with `--ca-cert`, refused without it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use tokio_rustls::rustls;

/// A TLS proxy on loopback for `localhost`, in front of `upstream`
/// (host:port); returns its port and the CA certificate (PEM) to trust.
async fn tls_proxy(upstream: String) -> (u16, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let pem = cert.cert.pem();
    let chain = vec![cert.cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (port, pem)
}

#[tokio::test]
async fn the_cli_talks_to_an_https_console_it_trusts_with_ca_cert_and_refuses_one_it_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (mut console, url) = support::serve(dir.path());
    let token = String::from_utf8(
        support::migctl(dir.path())
            .args(["user", "token", "admin"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let (port, ca) = tls_proxy(url.trim_start_matches("http://").to_owned()).await;
    let ca_file = dir.path().join("test-ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let https = format!("https://localhost:{port}");
    let cli = |extra: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_migctl"));
        c.env("MIGCTL_TOKEN", &token)
            .env_remove("MIGCTL_CA_CERT")
            .args(["op", "list", "--json", "--url", &https])
            .args(extra);
        c
    };
    let trusted = tokio::task::spawn_blocking({
        let mut c = cli(&["--ca-cert", ca_file.to_str().unwrap()]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&trusted.stdout).trim(), "[]");

    let untrusted = tokio::task::spawn_blocking({
        let mut c = cli(&[]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(untrusted.status.code(), Some(1));
    let why = String::from_utf8_lossy(&untrusted.stderr);
    assert!(why.contains("UnknownIssuer"), "{why}");

    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let out = cli(&["--ca-cert", junk.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no certificate in it"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    console.kill().unwrap();
    console.wait().unwrap();
}
