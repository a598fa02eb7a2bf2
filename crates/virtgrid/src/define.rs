//! A domain's XML written for this host from a [`Machine`]: this grid's
//! name for it, its disks and console in the app's directory of this host's
//! storage, migctl's metadata. Nothing of the host it came from.

use crate::config::VirtType;
use crate::domain::NS;
use grid::dialect::{Boot, Machine};
use grid::{AppName, GridName};
use quick_xml::escape::escape;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// libvirt's name for an app's domain: unique among the grids one libvirtd serves.
pub fn domain_name(grid: &GridName, app: &AppName) -> String {
    format!("migctl-{grid}-{app}")
}

/// Where the app's volume lives in its directory.
pub fn volume_file(app_dir: &Path, vol: &str) -> PathBuf {
    app_dir.join(format!("{vol}.raw"))
}

pub fn console_file(app_dir: &Path) -> PathBuf {
    app_dir.join("console.log")
}

/// Refuses a shape this host cannot define faithfully, saying why.
pub fn check(machine: &Machine) -> Result<(), String> {
    if let Some(why) = machine.not_movable() {
        return Err(why);
    }
    let word = |what: &str, s: &str| {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if ok {
            Ok(())
        } else {
            Err(format!("the machine's {what} {s:?} is not a libvirt name"))
        }
    };
    word("arch", &machine.arch)?;
    word("machine type", &machine.machine_type)?;
    for d in &machine.disks {
        word("disk dev", &d.dev)?;
        word("disk bus", &d.bus)?;
    }
    if machine.memory_mib == 0 || machine.vcpus == 0 {
        return Err("the machine needs memory and at least one vCPU".into());
    }
    Ok(())
}

pub struct Definition<'a> {
    pub grid: &'a GridName,
    pub app: &'a AppName,
    pub machine: &'a Machine,
    pub properties: &'a BTreeMap<String, String>,
    pub app_dir: &'a Path,
    pub virt_type: VirtType,
}

impl Definition<'_> {
    pub fn xml(&self) -> String {
        let m = self.machine;
        let e = |s: &str| escape(s).into_owned();
        let p = |path: &Path| e(&path.to_string_lossy());
        let kind = match self.virt_type {
            VirtType::Kvm => "kvm",
            VirtType::Qemu | VirtType::Auto => "qemu",
        };
        let mut x = format!("<domain type='{kind}'>\n");
        x += &format!("  <name>{}</name>\n", e(&domain_name(self.grid, self.app)));
        x += &format!(
            "  <metadata>\n    <migctl:app xmlns:migctl=\"{NS}\" grid=\"{}\" name=\"{}\">\n",
            e(self.grid.as_str()),
            e(self.app.as_str())
        );
        for d in &m.disks {
            x += &format!(
                "      <migctl:volume dev=\"{}\" name=\"{}\"/>\n",
                e(&d.dev),
                e(d.volume.as_str())
            );
        }
        for (k, v) in self.properties {
            x += &format!(
                "      <migctl:property key=\"{}\" value=\"{}\"/>\n",
                e(k),
                e(v)
            );
        }
        x += "    </migctl:app>\n  </metadata>\n";
        x += &format!(
            "  <memory unit='MiB'>{}</memory>\n  <vcpu>{}</vcpu>\n",
            m.memory_mib, m.vcpus
        );
        x += &format!(
            "  <os><type arch='{}' machine='{}'>hvm</type>\n",
            e(&m.arch),
            e(&m.machine_type)
        );
        if let Boot::Kernel { cmdline } = &m.boot {
            for (tag, vol) in [("kernel", Boot::KERNEL), ("initrd", Boot::INITRD)] {
                let f = volume_file(self.app_dir, vol);
                x += &format!("    <{tag}>{}</{tag}>\n", p(&f));
            }
            x += &format!("    <cmdline>{}</cmdline>\n", e(cmdline));
        }
        x += "  </os>\n  <features><acpi/></features>\n";
        // A guest that powers off or crashes stays off: the controller says
        // what became of it, libvirt does not restart it behind migctl's back.
        x += "  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>\n";
        x += "  <devices>\n";
        for d in &m.disks {
            x += &format!(
                "    <disk type='file' device='disk'><driver name='qemu' type='raw' cache='none'/><source file='{}'/><target dev='{}' bus='{}'/></disk>\n",
                p(&volume_file(self.app_dir, d.volume.as_str())),
                e(&d.dev),
                e(&d.bus)
            );
        }
        if m.serial_console {
            x += &format!(
                "    <serial type='file'><source path='{}' append='on'/><target port='0'/></serial>\n",
                p(&console_file(self.app_dir))
            );
        }
        x += "  </devices>\n</domain>\n";
        x
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::domain::Domain;
    use grid::dialect::MachineDisk;

    fn machine() -> Machine {
        Machine {
            memory_mib: 256,
            vcpus: 1,
            arch: "x86_64".into(),
            machine_type: "pc".into(),
            boot: Boot::Kernel {
                cmdline: "console=ttyS0 a=\"<b>\"".into(),
            },
            disks: vec![MachineDisk {
                volume: grid::VolumeName::new("data").unwrap(),
                dev: "vda".into(),
                bus: "virtio".into(),
            }],
            serial_console: true,
            not_carried: vec![],
        }
    }

    /// What is written reads back as the same shape, in this host's storage.
    #[test]
    fn a_definition_reads_back_as_its_machine_on_this_host() {
        let (grid, app) = (GridName::new("west").unwrap(), AppName::new("vm1").unwrap());
        let props = BTreeMap::from([("LISTEN".to_owned(), "a'b\"<c>".to_owned())]);
        let def = Definition {
            grid: &grid,
            app: &app,
            machine: &machine(),
            properties: &props,
            app_dir: Path::new("/srv/west/vm1"),
            virt_type: VirtType::Qemu,
        };
        let d = Domain::parse(&def.xml()).unwrap();
        assert_eq!(d.name, "migctl-west-vm1");
        assert_eq!(d.machine().unwrap(), machine());
        let meta = d.meta.unwrap();
        assert_eq!((meta.grid, meta.app), (grid, app));
        assert_eq!(meta.properties, props);
        assert_eq!(
            d.disks[0].file.as_deref(),
            Some(Path::new("/srv/west/vm1/data.raw"))
        );
        assert_eq!(
            d.kernel.as_deref(),
            Some(Path::new("/srv/west/vm1/boot-kernel.raw"))
        );
    }

    #[test]
    fn a_machine_with_devices_not_carried_or_odd_names_is_refused() {
        let mut m = machine();
        m.not_carried = vec!["interface".into()];
        assert!(check(&m).unwrap_err().contains("interface"));
        let mut m = machine();
        m.disks[0].bus = "virtio'/><x".into();
        assert!(check(&m).unwrap_err().contains("disk bus"));
        check(&machine()).unwrap();
    }
}
