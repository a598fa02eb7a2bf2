//! gridsim's SSH server as `ssh-audit` (Debian's; scripts/setup installs
//! it) sees it: no algorithm it fails or warns about, except those newer
//! than the audit tool knows.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[tokio::test]
async fn ssh_audit_finds_no_weak_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    gridsim::init(dir.path(), &["east"], 0, vec!["true".into()]).unwrap();
    let sim = gridsim::start(dir.path()).await.unwrap();
    let address = sim.grid("east").unwrap().address;
    let out = tokio::process::Command::new("ssh-audit")
        .args([
            "-n",
            "-p",
            &address.port().to_string(),
            &address.ip().to_string(),
        ])
        .output()
        .await
        .expect("ssh-audit (Debian's ssh-audit package) runs; scripts/setup installs it");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("(key) ssh-ed25519"), "{report}");
    let objections: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("[fail]") || l.contains("[warn]") || l.starts_with("(rec)"))
        .filter(|l| !l.contains("[warn] unknown algorithm"))
        .collect();
    assert_eq!(objections, Vec::<&str>::new(), "{report}");
    sim.stop().await;
}
