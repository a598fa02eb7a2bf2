//! A libvirt domain's XML, read: whether it is an app of this grid (its
//! migctl metadata says so), its disks, its console and the shape
//! ([`Machine`]) another host needs to define it again.

use grid::dialect::{Boot, Machine, MachineDisk};
use grid::{AppName, GridName, TemplateName, VolumeName};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The namespace of migctl's element in a domain's `<metadata>`.
pub const NS: &str = "https://migctl.dev/xmlns/app/1";

/// What migctl's metadata says of a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppMeta {
    pub grid: GridName,
    pub app: AppName,
    pub template: Option<TemplateName>,
    pub properties: BTreeMap<String, String>,
    /// Volume names of disks, by target dev (a disk not named is its dev).
    pub volumes: BTreeMap<String, VolumeName>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    pub dev: String,
    pub bus: String,
    /// `raw`, `qcow2`, …
    pub format: String,
    /// The image file; `None` for a disk that is not a file.
    pub file: Option<PathBuf>,
}

impl Disk {
    /// Why migctl cannot read and write this disk's bytes, if it cannot:
    /// only raw image files are moved. Said by `vol` commands and listed in
    /// the machine's `not_carried`, so that pre-flight refuses it first.
    pub fn unsupported(&self) -> Option<String> {
        if self.format != "raw" {
            Some(format!(
                "disk {} is a {} image; migctl moves raw images only: convert it while the domain is shut off (qemu-img convert -O raw) and point the disk at the raw file",
                self.dev, self.format
            ))
        } else if self.file.is_none() {
            Some(format!(
                "disk {} is not an image file; migctl moves image files only",
                self.dev
            ))
        } else {
            None
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    /// libvirt's name for it.
    pub name: String,
    pub meta: Option<AppMeta>,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub arch: String,
    pub machine_type: String,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub disks: Vec<Disk>,
    /// Where the serial console is written (a `file` serial).
    pub console: Option<PathBuf>,
    /// Device elements this shape does not carry, e.g. `interface`.
    pub others: Vec<String>,
}

/// Devices a [`Machine`] accounts for (disks and serial consoles carried,
/// the rest libvirt adds by itself to every domain).
const KNOWN_DEVICES: &[&str] = &[
    "disk",
    "serial",
    "console",
    "emulator",
    "controller",
    "input",
    "memballoon",
    "audio",
    "video",
    "watchdog",
];

impl Domain {
    pub fn parse(xml: &str) -> Result<Domain, String> {
        let doc = roxmltree::Document::parse(xml).map_err(|e| format!("domain XML: {e}"))?;
        let root = doc.root_element();
        let text = |n: Option<roxmltree::Node<'_, '_>>| {
            n.and_then(|n| n.text()).unwrap_or("").trim().to_owned()
        };
        let name = text(child(root, "name"));
        let memory = child(root, "memory");
        let memory_kib: u64 = text(memory).parse().unwrap_or(0);
        let memory_mib = match memory.and_then(|m| m.attribute("unit")).unwrap_or("KiB") {
            "KiB" | "k" => memory_kib / 1024,
            "MiB" | "M" => memory_kib,
            "GiB" | "G" => memory_kib * 1024,
            u => return Err(format!("domain {name}: memory in {u:?} is not understood")),
        };
        let vcpus = text(child(root, "vcpu")).parse().unwrap_or(1);
        let os = child(root, "os");
        let os_type = os.and_then(|o| child(o, "type"));
        let path = |n: Option<roxmltree::Node<'_, '_>>| {
            Some(text(n)).filter(|t| !t.is_empty()).map(PathBuf::from)
        };
        let mut disks = vec![];
        let mut console = None;
        let mut others = vec![];
        if let Some(devices) = child(root, "devices") {
            for d in devices.children().filter(roxmltree::Node::is_element) {
                match d.tag_name().name() {
                    "disk" if d.attribute("device").unwrap_or("disk") != "disk" => {
                        others.push(format!("disk ({})", d.attribute("device").unwrap_or("?")));
                    }
                    "disk" => {
                        let target = child(d, "target");
                        disks.push(Disk {
                            dev: target.and_then(|t| t.attribute("dev")).unwrap_or("").into(),
                            bus: target
                                .and_then(|t| t.attribute("bus"))
                                .unwrap_or("virtio")
                                .into(),
                            format: child(d, "driver")
                                .and_then(|t| t.attribute("type"))
                                .unwrap_or("raw")
                                .into(),
                            file: (d.attribute("type") == Some("file"))
                                .then(|| child(d, "source").and_then(|s| s.attribute("file")))
                                .flatten()
                                .map(PathBuf::from),
                        });
                    }
                    "serial" if d.attribute("type") == Some("file") && console.is_none() => {
                        console = child(d, "source")
                            .and_then(|s| s.attribute("path"))
                            .map(PathBuf::from);
                    }
                    n if KNOWN_DEVICES.contains(&n) => {}
                    n => others.push(n.to_owned()),
                }
            }
        }
        if let Some(os) = os {
            for n in ["loader", "nvram"] {
                if child(os, n).is_some() {
                    others.push(format!("os {n} (UEFI firmware)"));
                }
            }
        }
        Ok(Domain {
            meta: child(root, "metadata")
                .and_then(|m| m.children().find(|n| n.has_tag_name((NS, "app"))))
                .map(|app| meta(&name, app))
                .transpose()?,
            memory_mib,
            vcpus,
            arch: os_type
                .and_then(|t| t.attribute("arch"))
                .unwrap_or("x86_64")
                .into(),
            machine_type: os_type
                .and_then(|t| t.attribute("machine"))
                .unwrap_or("pc")
                .into(),
            kernel: path(os.and_then(|o| child(o, "kernel"))),
            initrd: path(os.and_then(|o| child(o, "initrd"))),
            cmdline: text(os.and_then(|o| child(o, "cmdline"))),
            disks,
            console,
            others,
            name,
        })
    }

    /// The volume name of a disk.
    pub fn volume_of(&self, disk: &Disk) -> Result<VolumeName, String> {
        if let Some(v) = self.meta.as_ref().and_then(|m| m.volumes.get(&disk.dev)) {
            return Ok(v.clone());
        }
        VolumeName::new(&disk.dev)
            .map_err(|e| format!("domain {}: disk {:?}: {e}", self.name, disk.dev))
    }

    /// The app's volumes: its disks, then a direct-boot kernel and initrd.
    pub fn volumes(&self) -> Result<Vec<(VolumeName, Volume)>, String> {
        let mut out = vec![];
        for d in &self.disks {
            out.push((self.volume_of(d)?, Volume::Disk(d.clone())));
        }
        for (name, file) in [(Boot::KERNEL, &self.kernel), (Boot::INITRD, &self.initrd)] {
            if let Some(f) = file {
                let name = VolumeName::new(name).map_err(|e| e.to_string())?;
                out.push((name, Volume::BootFile(f.clone())));
            }
        }
        Ok(out)
    }

    /// The shape another host defines again.
    pub fn machine(&self) -> Result<Machine, String> {
        let mut disks = vec![];
        for d in &self.disks {
            disks.push(MachineDisk {
                volume: self.volume_of(d)?,
                dev: d.dev.clone(),
                bus: d.bus.clone(),
            });
        }
        Ok(Machine {
            memory_mib: self.memory_mib,
            vcpus: self.vcpus,
            arch: self.arch.clone(),
            machine_type: self.machine_type.clone(),
            boot: match self.kernel {
                Some(_) => Boot::Kernel {
                    cmdline: self.cmdline.clone(),
                },
                None => Boot::Disk,
            },
            disks,
            serial_console: self.console.is_some(),
            not_carried: self
                .others
                .iter()
                .cloned()
                .chain(self.disks.iter().filter_map(Disk::unsupported))
                .collect(),
        })
    }
}

fn child<'a, 'i>(parent: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    parent.children().find(|n| n.has_tag_name(name))
}

/// One of an app's volumes as a file of the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Volume {
    Disk(Disk),
    /// A kernel or initrd the domain boots directly.
    BootFile(PathBuf),
}

fn meta(domain: &str, app: roxmltree::Node<'_, '_>) -> Result<AppMeta, String> {
    let attr = |k: &str| {
        app.attribute(k)
            .ok_or_else(|| format!("domain {domain}: migctl metadata without {k:?}"))
    };
    let bad = |e: grid::NameError| format!("domain {domain}: migctl metadata: {e}");
    let mut properties = BTreeMap::new();
    let mut volumes = BTreeMap::new();
    for n in app.children().filter(roxmltree::Node::is_element) {
        if n.has_tag_name((NS, "property")) {
            let (Some(k), Some(v)) = (n.attribute("key"), n.attribute("value")) else {
                return Err(format!(
                    "domain {domain}: a migctl property needs key and value"
                ));
            };
            properties.insert(k.to_owned(), v.to_owned());
        } else if n.has_tag_name((NS, "volume")) {
            let (Some(dev), Some(name)) = (n.attribute("dev"), n.attribute("name")) else {
                return Err(format!(
                    "domain {domain}: a migctl volume needs dev and name"
                ));
            };
            volumes.insert(dev.to_owned(), VolumeName::new(name).map_err(bad)?);
        }
    }
    Ok(AppMeta {
        grid: GridName::new(attr("grid")?).map_err(bad)?,
        app: AppName::new(attr("name")?).map_err(bad)?,
        template: app
            .attribute("template")
            .map(TemplateName::new)
            .transpose()
            .map_err(bad)?,
        properties,
        volumes,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const XML: &str = r#"<domain type='qemu' id='3'>
  <name>migctl-east-vm1</name>
  <uuid>0b0e7f2e-7d5c-4a38-9d6b-7a1d5d0f1a11</uuid>
  <metadata>
    <migctl:app xmlns:migctl="https://migctl.dev/xmlns/app/1" grid="east" name="vm1">
      <migctl:volume dev="vda" name="data"/>
      <migctl:property key="LISTEN" value="10.0.0.5:80"/>
    </migctl:app>
  </metadata>
  <memory unit='KiB'>262144</memory>
  <vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
    <kernel>/srv/east/vm1/boot-kernel.raw</kernel><initrd>/srv/east/vm1/boot-initrd.raw</initrd>
    <cmdline>console=ttyS0 quiet</cmdline></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/>
      <source file='/srv/east/vm1/data.raw'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='/srv/east/vm1/scratch.qcow2'/><target dev='vdb' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/></disk>
    <controller type='usb' index='0'/>
    <interface type='network'><source network='default'/></interface>
    <serial type='file'><source path='/srv/east/vm1/console.log' append='on'/><target port='0'/></serial>
    <console type='file'><target type='serial' port='0'/></console>
  </devices>
</domain>"#;

    #[test]
    fn a_domain_reads_as_its_app_volumes_and_shape() {
        let d = Domain::parse(XML).unwrap();
        let meta = d.meta.clone().unwrap();
        assert_eq!(meta.grid.as_str(), "east");
        assert_eq!(meta.app.as_str(), "vm1");
        assert_eq!(meta.properties["LISTEN"], "10.0.0.5:80");
        assert_eq!(d.memory_mib, 256);
        assert_eq!(
            d.console.as_deref(),
            Some(std::path::Path::new("/srv/east/vm1/console.log"))
        );
        let vols: Vec<String> = d
            .volumes()
            .unwrap()
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(vols, ["data", "vdb", "boot-kernel", "boot-initrd"]);
        assert_eq!(d.disks[1].format, "qcow2");
        let m = d.machine().unwrap();
        assert_eq!(
            m.boot,
            Boot::Kernel {
                cmdline: "console=ttyS0 quiet".into()
            }
        );
        assert_eq!(m.machine_type, "pc-i440fx-7.2");
        assert_eq!(m.not_carried[..2], ["disk (cdrom)", "interface"]);
        // The qcow2 disk is listed too: pre-flight refuses it, naming it.
        assert_eq!(m.not_carried.len(), 3, "{:?}", m.not_carried);
        assert!(
            m.not_carried[2].contains("disk vdb is a qcow2 image"),
            "{:?}",
            m.not_carried
        );
        assert!(
            m.not_movable()
                .unwrap()
                .contains("disk vdb is a qcow2 image")
        );
        assert!(m.serial_console);
    }

    #[test]
    fn a_domain_without_migctl_metadata_is_no_app() {
        let xml = XML.replace(
            "https://migctl.dev/xmlns/app/1",
            "https://example.com/other",
        );
        assert_eq!(Domain::parse(&xml).unwrap().meta, None);
    }
}
