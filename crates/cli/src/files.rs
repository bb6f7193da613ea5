//! Writing files so that a reader never sees a half-written one and a secret is never readable
//! by others, not even for an instant.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;

use crate::error::CliError;

/// Writes `data` to `path` through a temporary file in the same directory (created with mode
/// 0600), sets `mode`, syncs, and renames it into place. Missing parent directories are created
/// with mode 0700.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), CliError> {
    let fail = |what: &str, e: std::io::Error| {
        CliError::Failed(format!("cannot write {}: {what}: {e}", path.display()))
    };
    let dir = path
        .parent()
        .ok_or_else(|| CliError::Failed(format!("{} has no directory", path.display())))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail("creating its directory", e))?;
    // tempfile creates the file with mode 0600 before anything is written to it.
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| fail("creating a temporary file", e))?;
    tmp.write_all(data).map_err(|e| fail("writing", e))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| fail("setting its mode", e))?;
    tmp.as_file().sync_all().map_err(|e| fail("syncing", e))?;
    tmp.persist(path).map_err(|e| fail("renaming", e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_gets_the_mode_and_the_directory_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state").join("secret");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }
}
