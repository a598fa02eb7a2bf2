//! KVM where it works, TCG otherwise, chosen at run time. `/dev/kvm` can
//! exist and still be unusable (seen here: a KVM guest that hangs as it
//! leaves real mode), so `auto` boots a probe under KVM through libvirt
//! itself (as the user QEMU runs as, with libvirt's own setup): with a probe
//! kernel configured, that kernel until it prints `Linux version` (early
//! printk, in long mode); without one, a 512-byte boot sector that writes
//! "OK" to its serial port (a weaker check: real mode only). Without that
//! within [`PROBE_LIMIT`], domains run under TCG.

use crate::config::VirtType;
use crate::virsh::Virsh;
use quick_xml::escape::escape;
use std::path::Path;
use std::time::Duration;

const PROBE_LIMIT: Duration = Duration::from_secs(10);
const PROBE_PREFIX: &str = "virtgrid-kvm-probe-";

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

/// Whether QEMU, run by libvirt in group `kvm` (Debian's `libvirt-qemu`
/// user), may open `/dev/kvm`: open to all, or to group `kvm`, as udev's rule
/// makes it.
fn qemu_may_open_kvm() -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata("/dev/kvm").map_err(|e| format!("/dev/kvm: {e}"))?;
    let mode = meta.permissions().mode();
    let kvm_gid = std::fs::read_to_string("/etc/group")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some("kvm")).then(|| f.nth(1)?.parse::<u32>().ok())?
        });
    let by_group = mode & 0o060 == 0o060 && Some(meta.gid()) == kvm_gid;
    if mode & 0o006 == 0o006 || by_group {
        Ok(())
    } else {
        Err(format!(
            "/dev/kvm (mode {:o}) is open neither to group kvm nor to all, so libvirt's QEMU cannot use it",
            mode & 0o777
        ))
    }
}

/// What `auto` boots to try KVM.
pub enum Probe<'a> {
    Kernel(&'a Path),
    BootSector,
}

pub async fn resolve(wanted: VirtType, virsh: &Virsh, probe: Probe<'_>, work: &Path) -> VirtType {
    if wanted != VirtType::Auto {
        return wanted;
    }
    match kvm_boots(virsh, probe, work).await {
        Ok(()) => VirtType::Kvm,
        Err(why) => {
            tracing::info!(%why, "KVM is not usable here; virtual machines run under TCG (emulated, slower)");
            VirtType::Qemu
        }
    }
}

async fn kvm_boots(virsh: &Virsh, probe: Probe<'_>, work: &Path) -> Result<(), String> {
    // libvirt takes 90 s to give up on a KVM guest that cannot open /dev/kvm.
    qemu_may_open_kvm()?;
    virsh
        .run(&["domcapabilities", "--virttype", "kvm"])
        .await
        .map_err(|e| e.to_string())?;
    // A probe an earlier daemon left running (killed mid-probe) ends now.
    if let Ok(names) = virsh.run(&["list", "--name"]).await {
        for n in names
            .lines()
            .map(str::trim)
            .filter(|n| n.starts_with(PROBE_PREFIX))
        {
            let _ = virsh.run(&["destroy", "--domain", n]).await;
        }
    }
    let dir = work.join(format!(".kvm-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let outcome = boot(virsh, probe, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn boot(virsh: &Virsh, probe: Probe<'_>, dir: &Path) -> Result<(), String> {
    let name = format!("{PROBE_PREFIX}{}", std::process::id());
    let serial = dir.join("serial.log");
    let (os, devices, expect) = match probe {
        Probe::Kernel(k) => (
            format!(
                "<kernel>{}</kernel><cmdline>console=ttyS0 earlyprintk=ttyS0 panic=-1</cmdline>",
                escape(k.to_string_lossy())
            ),
            String::new(),
            "Linux version",
        ),
        Probe::BootSector => {
            let img = dir.join("probe.img");
            std::fs::write(&img, probe_image()).map_err(|e| e.to_string())?;
            (
                "<boot dev='fd'/>".to_owned(),
                format!(
                    "<disk type='file' device='floppy'><driver name='qemu' type='raw'/><source file='{}'/><target dev='fda' bus='fdc'/></disk>",
                    escape(img.to_string_lossy())
                ),
                "OK",
            )
        }
    };
    let xml = format!(
        "<domain type='kvm'><name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='pc'>hvm</type>{os}</os>\
         <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>\
         <devices>{devices}<serial type='file'><source path='{}'/><target port='0'/></serial></devices></domain>",
        escape(serial.to_string_lossy())
    );
    let file = dir.join("probe.xml");
    std::fs::write(&file, xml).map_err(|e| e.to_string())?;
    if let Err(e) = virsh.run(&["create", &file.to_string_lossy()]).await {
        // It may still come up (a create that timed out): never left running.
        let _ = virsh.run(&["destroy", "--domain", &name]).await;
        return Err(e.to_string());
    }
    let began = std::time::Instant::now();
    let booted = loop {
        let said = std::fs::read(&serial).unwrap_or_default();
        if said.windows(expect.len()).any(|w| w == expect.as_bytes()) {
            break true;
        }
        if began.elapsed() >= PROBE_LIMIT {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if let Err(e) = virsh.run(&["destroy", "--domain", &name]).await {
        tracing::warn!(domain = %name, error = %e, "the KVM probe guest could not be ended; end it: virsh destroy");
    }
    if booted {
        Ok(())
    } else {
        Err(format!(
            "a KVM probe guest did not print {expect:?} within {} s",
            PROBE_LIMIT.as_secs()
        ))
    }
}
