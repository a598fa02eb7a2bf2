//! KVM where it works, TCG otherwise, chosen at run time. `/dev/kvm` can
//! exist and still be unusable (seen here: a KVM guest that never gets past
//! its first instruction), so `auto` boots a 512-byte probe under KVM that
//! writes "OK" to its serial port and halts; without "OK" within
//! [`PROBE_LIMIT`], domains run under TCG.

use crate::config::VirtType;
use crate::virsh::Virsh;
use std::time::Duration;
use tokio::io::AsyncReadExt;

const PROBE_LIMIT: Duration = Duration::from_secs(5);

/// A boot sector: `mov dx, 0x3f8; mov al, 'O'; out dx, al; mov al, 'K';
/// out dx, al; mov al, 10; out dx, al; cli; hlt; jmp $-3`.
fn probe_image() -> Vec<u8> {
    let code = [
        0xBA, 0xF8, 0x03, 0xB0, b'O', 0xEE, 0xB0, b'K', 0xEE, 0xB0, 0x0A, 0xEE, 0xFA, 0xF4, 0xEB,
        0xFD,
    ];
    let mut img = vec![0u8; 512];
    img[..code.len()].copy_from_slice(&code);
    img[510] = 0x55;
    img[511] = 0xAA;
    img
}

pub async fn resolve(wanted: VirtType, virsh: &Virsh) -> VirtType {
    if wanted != VirtType::Auto {
        return wanted;
    }
    match kvm_boots(virsh).await {
        Ok(()) => VirtType::Kvm,
        Err(why) => {
            tracing::info!(%why, "KVM is not usable here; virtual machines run under TCG (emulated, slower)");
            VirtType::Qemu
        }
    }
}

async fn kvm_boots(virsh: &Virsh) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm: {e}"))?;
    virsh
        .run(&["domcapabilities", "--virttype", "kvm"])
        .await
        .map_err(|e| e.to_string())?;
    let dir = std::env::temp_dir().join(format!("virtgrid-kvm-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let img = dir.join("probe.img");
    std::fs::write(&img, probe_image()).map_err(|e| e.to_string())?;
    let outcome = boot(&img).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn boot(img: &std::path::Path) -> Result<(), String> {
    let mut child = tokio::process::Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "kvm",
            "-display",
            "none",
            "-monitor",
            "none",
            "-nodefaults",
        ])
        .args(["-serial", "stdio", "-no-reboot", "-m", "16", "-drive"])
        .arg(format!("file={},format=raw,if=floppy", img.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run qemu-system-x86_64: {e}"))?;
    let mut out = child.stdout.take().ok_or("no stdout")?;
    let said = tokio::time::timeout(PROBE_LIMIT, async {
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            match out.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
            if seen.windows(2).any(|w| w == b"OK") {
                return true;
            }
        }
    })
    .await;
    let _ = child.kill().await;
    match said {
        Ok(true) => Ok(()),
        Ok(false) => Err("a KVM probe guest ended without booting".into()),
        Err(_) => Err(format!(
            "a KVM probe guest did not boot within {} s",
            PROBE_LIMIT.as_secs()
        )),
    }
}
