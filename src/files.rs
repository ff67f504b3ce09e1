//! The wallet's data directory on disk: created private (0700) before anything is written.

use crate::error::WalletError;
use std::path::Path;

/// Makes sure `dir` exists and only its owner can enter it.
pub(crate) fn prepare_data_dir(dir: &Path) -> Result<(), WalletError> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
