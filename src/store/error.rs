//! Store failures a user can act on: a missing or unwritable place, a locked, corrupt or
//! newer database. Each names the file and what to do.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {}: {reason}", path.display())]
    Open { path: PathBuf, reason: String },

    #[error(
        "the store at {} is locked by another process; wait for it to finish, or stop it",
        path.display()
    )]
    Locked { path: PathBuf },

    #[error(
        "the store at {} is not a readable SQLite database ({reason}); move it aside to start \
         a fresh store",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },

    #[error(
        "the store at {} was migrated by a newer franchise (schema version {version} is unknown \
         to this one); upgrade franchise, or point --data-dir elsewhere",
        path.display()
    )]
    NewerSchema { path: PathBuf, version: i64 },

    #[error("store query failed: {0}")]
    Sql(#[from] sqlx::Error),
}

impl StoreError {
    pub(crate) fn from_open(path: &Path, error: sqlx::Error) -> Self {
        let path = path.to_path_buf();
        match sqlite_code(&error).as_deref() {
            Some("5") | Some("6") => Self::Locked { path },
            Some("11") | Some("26") => Self::Corrupt {
                path,
                reason: error.to_string(),
            },
            _ => Self::Open {
                path,
                reason: error.to_string(),
            },
        }
    }

    pub(crate) fn from_migrate(path: &Path, error: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError;
        match error {
            MigrateError::VersionMissing(version) => Self::NewerSchema {
                path: path.to_path_buf(),
                version,
            },
            MigrateError::Execute(e) => Self::from_open(path, e),
            other => Self::Open {
                path: path.to_path_buf(),
                reason: other.to_string(),
            },
        }
    }
}

/// SQLite's primary result code, as sqlx reports it.
fn sqlite_code(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|c| {
            // Extended codes carry the primary code in the low byte.
            c.parse::<i64>()
                .map(|n| (n & 0xff).to_string())
                .unwrap_or_else(|_| c.into_owned())
        }),
        _ => None,
    }
}
