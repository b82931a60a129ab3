//! The key-encryption key (KEK): 32 random bytes that seal the private halves
//! of the signing keys stored in the database.
//!
//! It lives in `keys/kek` (folder 0700, file 0600), or arrives through
//! `TESSERA_KEK` so several nodes can share it from a secret store. A KEK file
//! that others can read is refused: whoever reads it can sign tokens.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::KeyError;
use crate::crypto::{aead, digest, random};

pub const KEK_FILE: &str = "kek";

pub struct KeyEncryptionKey {
    bytes: [u8; aead::KEY_LEN],
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEncryptionKey")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

/// Where the KEK came from, and whether it was created just now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    Environment,
    File(PathBuf),
    Created(PathBuf),
}

impl KeyEncryptionKey {
    /// A short, non-secret identifier stored beside every sealed key, so a
    /// wrong KEK is reported as such instead of as a decryption failure.
    pub fn id(&self) -> String {
        digest::sha256(&self.bytes)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        Ok(aead::seal(&self.bytes, aad, plaintext)?)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        Ok(aead::open(&self.bytes, aad, sealed)?)
    }

    fn decode(text: &str, origin: &str) -> Result<Self, KeyError> {
        let raw = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| KeyError::Kek(format!("{origin} is not base64url")))?;
        let bytes: [u8; aead::KEY_LEN] = raw.try_into().map_err(|_| {
            KeyError::Kek(format!("{origin} must hold exactly 32 bytes (base64url)"))
        })?;
        Ok(Self { bytes })
    }

    /// Reads the KEK from `env_value` or from `dir/kek`. Returns `None` when
    /// neither exists; never creates anything.
    pub fn load(
        dir: &Path,
        env_value: Option<&str>,
    ) -> Result<Option<(Self, KekSource)>, KeyError> {
        if let Some(value) = env_value {
            return Ok(Some((
                Self::decode(value, "TESSERA_KEK")?,
                KekSource::Environment,
            )));
        }
        let path = dir.join(KEK_FILE);
        if !path.exists() {
            return Ok(None);
        }
        check_private(&path)?;
        let text = fs::read_to_string(&path)
            .map_err(|e| KeyError::Kek(format!("cannot read {}: {e}", path.display())))?;
        Ok(Some((
            Self::decode(&text, &path.display().to_string())?,
            KekSource::File(path),
        )))
    }

    /// Generates a new KEK and writes it to `dir/kek` (0600, in a 0700
    /// folder), atomically: a crash leaves either no file or a whole one.
    pub fn create(dir: &Path) -> Result<(Self, KekSource), KeyError> {
        let bytes = random::bytes::<{ aead::KEY_LEN }>()?;
        create_private_dir(dir)?;
        let path = dir.join(KEK_FILE);
        let tmp = dir.join(format!(".{KEK_FILE}.{}", uuid::Uuid::new_v4().simple()));
        let fail =
            |e: std::io::Error| KeyError::Kek(format!("cannot write {}: {e}", path.display()));
        {
            let mut file = private_file_options().open(&tmp).map_err(fail)?;
            writeln!(file, "{}", URL_SAFE_NO_PAD.encode(bytes)).map_err(fail)?;
            file.sync_all().map_err(fail)?;
        }
        // `rename` would replace a file a concurrent process just created;
        // `hard_link` fails instead, and then that process's key wins.
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok((Self { bytes }, KekSource::Created(path))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(dir, None)?
                .ok_or_else(|| KeyError::Kek(format!("{} vanished", path.display()))),
            Err(e) => Err(fail(e)),
        }
    }
}

#[cfg(unix)]
fn private_file_options() -> fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true).mode(0o600);
    o
}

#[cfg(not(unix))]
fn private_file_options() -> fs::OpenOptions {
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true);
    o
}

fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    let fail = |e: std::io::Error| KeyError::Kek(format!("cannot create {}: {e}", dir.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if dir.exists() {
            // A checkout brings `keys/` with its README at 0755: tighten it
            // before the KEK goes in.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(fail)?;
        } else {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(fail)?;
        }
    }
    #[cfg(not(unix))]
    fs::create_dir_all(dir).map_err(fail)?;
    Ok(())
}

/// Refuses a key file that the group or others may read or write, and one in
/// a folder they may write to (they could replace it).
#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        let mode = fs::metadata(dir)
            .map_err(|e| KeyError::Kek(format!("cannot read {}: {e}", dir.display())))?
            .permissions()
            .mode();
        if mode & 0o022 != 0 {
            return Err(KeyError::Kek(format!(
                "{} is writable by group or others (mode {:o}); refusing the key in it. \
                 Run `chmod 700 {}`",
                dir.display(),
                mode & 0o777,
                dir.display()
            )));
        }
    }
    let mode = fs::metadata(path)
        .map_err(|e| KeyError::Kek(format!("cannot read {}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::Kek(format!(
            "{} is accessible by group or others (mode {:o}); refusing to use it. \
             Run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), KeyError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_kek_loads_back_and_others_cannot_read_it() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let keys = dir.path().join("keys");
        assert!(KeyEncryptionKey::load(&keys, None)?.is_none());
        let (kek, source) = KeyEncryptionKey::create(&keys)?;
        assert!(matches!(source, KekSource::Created(_)));
        let (again, _) = KeyEncryptionKey::load(&keys, None)?.ok_or("missing")?;
        assert_eq!(kek.id(), again.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&keys)?.permissions().mode() & 0o777, 0o700);
            let file = keys.join(KEK_FILE);
            assert_eq!(fs::metadata(&file)?.permissions().mode() & 0o777, 0o600);
            fs::set_permissions(&keys, fs::Permissions::from_mode(0o777))?;
            let err = KeyEncryptionKey::load(&keys, None)
                .err()
                .ok_or("accepted")?;
            assert!(err.to_string().contains("chmod 700"), "{err}");
            fs::set_permissions(&keys, fs::Permissions::from_mode(0o755))?;
            KeyEncryptionKey::load(&keys, None)?;
            fs::set_permissions(&file, fs::Permissions::from_mode(0o640))?;
            let err = KeyEncryptionKey::load(&keys, None)
                .err()
                .ok_or("accepted")?;
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        Ok(())
    }

    #[test]
    fn an_existing_open_folder_is_tightened_when_the_kek_is_created()
    -> Result<(), Box<dyn std::error::Error>> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let dir = tempfile::tempdir()?;
            let keys = dir.path().join("keys");
            fs::create_dir(&keys)?;
            fs::set_permissions(&keys, fs::Permissions::from_mode(0o755))?;
            KeyEncryptionKey::create(&keys)?;
            assert_eq!(fs::metadata(&keys)?.permissions().mode() & 0o777, 0o700);
        }
        Ok(())
    }

    #[test]
    fn kek_from_the_environment_must_be_32_bytes() {
        assert!(KeyEncryptionKey::load(Path::new("/nonexistent"), Some("c2hvcnQ")).is_err());
        let ok = URL_SAFE_NO_PAD.encode([1u8; 32]);
        assert!(matches!(
            KeyEncryptionKey::load(Path::new("/nonexistent"), Some(&ok)),
            Ok(Some((_, KekSource::Environment)))
        ));
    }
}
