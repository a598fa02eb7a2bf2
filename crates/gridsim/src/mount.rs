//! Volumes an app's process sees as directories (MIG's config volume on
//! `/mnt/config`). The volume's bytes stay the truth: at start the volume's
//! image (a tar archive from offset 0, zeros after it; an all-zero volume is
//! an empty directory) is unpacked into a directory private to this grid,
//! and when the process has ended the directory is packed back into the
//! image before the app is `stopped`. So `vol read`, `vol hash` and a copy
//! to another grid see exactly what the process wrote, file modes included,
//! and nothing of it lives where two grids could both see it.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(
        "volume {volume} is full: its files need {needed} bytes and it has {size}; nothing was written, the files are kept in {kept}"
    )]
    Full {
        volume: String,
        needed: u64,
        size: u64,
        kept: String,
    },
    #[error("volume {volume}: {source}")]
    Io {
        volume: String,
        source: std::io::Error,
    },
}

/// Replaces `dir` with the files of the image `volume_file`.
pub fn unpack(volume: &str, volume_file: &Path, dir: &Path) -> Result<(), MountError> {
    let io = |source| MountError::Io {
        volume: volume.to_owned(),
        source,
    };
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io)?;
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut archive = tar::Archive::new(File::open(volume_file).map_err(io)?);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    archive.unpack(dir).map_err(io)
}

/// Writes the files of `dir` into the image `volume_file` of `size` bytes.
/// Files that do not fit leave the image as it was. Returns the bytes used.
pub fn pack(volume: &str, dir: &Path, volume_file: &Path, size: u64) -> Result<u64, MountError> {
    let io = |source| MountError::Io {
        volume: volume.to_owned(),
        source,
    };
    let mut image = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut image);
        builder.mode(tar::HeaderMode::Complete);
        builder.follow_symlinks(false);
        builder.append_dir_all(".", dir).map_err(io)?;
        builder.finish().map_err(io)?;
    }
    let needed = image.len() as u64;
    if needed > size {
        return Err(MountError::Full {
            volume: volume.to_owned(),
            needed,
            size,
            kept: dir.display().to_string(),
        });
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(volume_file)
        .map_err(io)?;
    // Zeros after the archive (kept sparse), then the archive from offset 0.
    file.set_len(0).map_err(io)?;
    file.set_len(size).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(&image).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(needed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_and_modes_survive_a_pack_and_an_unpack_elsewhere() {
        let t = tempfile::tempdir().unwrap();
        let image = t.path().join("config.img");
        File::create(&image).unwrap().set_len(1 << 20).unwrap();
        let a = t.path().join("a");
        unpack("config", &image, &a).unwrap();
        assert_eq!(std::fs::read_dir(&a).unwrap().count(), 0, "zeros: empty");
        std::fs::create_dir(a.join("locks")).unwrap();
        std::fs::write(a.join("id_ed25519"), b"secret").unwrap();
        std::fs::set_permissions(a.join("id_ed25519"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::fs::write(a.join("locks/done-op.json"), b"{}").unwrap();
        let used = pack("config", &a, &image, 1 << 20).unwrap();
        assert!(used > 0 && used < 1 << 20);
        assert_eq!(std::fs::metadata(&image).unwrap().len(), 1 << 20);

        let b = t.path().join("b");
        unpack("config", &image, &b).unwrap();
        assert_eq!(std::fs::read(b.join("id_ed25519")).unwrap(), b"secret");
        let mode = std::fs::metadata(b.join("id_ed25519"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read(b.join("locks/done-op.json")).unwrap(), b"{}");
    }

    #[test]
    fn a_full_volume_is_an_error_and_the_image_is_untouched() {
        let t = tempfile::tempdir().unwrap();
        let image = t.path().join("config.img");
        std::fs::write(&image, vec![0u8; 4096]).unwrap();
        let dir = t.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("big"), vec![7u8; 64 << 10]).unwrap();
        let err = pack("config", &dir, &image, 4096).unwrap_err().to_string();
        assert!(err.contains("volume config is full"), "{err}");
        assert_eq!(std::fs::read(&image).unwrap(), vec![0u8; 4096]);
        assert!(dir.join("big").exists(), "the files are kept");
    }
}
