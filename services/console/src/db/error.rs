//! What a repository call can fail with. Messages say what failed and what
//! to do; none ever holds a secret value.

use lain_store::secret::SecretError;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A value broke a rule: `what` names the field, `problem` says what
    /// would be valid.
    #[error("invalid {what}: {problem}")]
    Invalid { what: &'static str, problem: String },
    #[error("{what} `{key}` does not exist{hint}")]
    NotFound {
        what: &'static str,
        key: String,
        /// A leading `; ...` with what to do, or empty.
        hint: &'static str,
    },
    #[error("{what} `{key}` already exists{hint}")]
    AlreadyExists {
        what: &'static str,
        key: String,
        hint: String,
    },
    /// Release `version` of `app` was registered before with other content.
    #[error(
        "release `{version}` of app `{app}` is already registered with a different {field}; \
         a version names one build: push a new commit instead of re-tagging"
    )]
    ReleaseConflict {
        app: String,
        version: String,
        field: &'static str,
    },
    #[error(
        "`{subject}` is the last owner of app `{app}`; add another owner before removing \
         or demoting this one"
    )]
    LastOwner { app: String, subject: String },
    #[error(
        "deployment {id} is {from} and cannot become {to}{}",
        if *terminal { "; it has finished: start a new deployment" } else { "" }
    )]
    InvalidTransition {
        id: i64,
        from: &'static str,
        to: &'static str,
        terminal: bool,
    },
    #[error("{what} is {size} bytes; at most {max} are allowed")]
    TooLarge {
        what: &'static str,
        size: usize,
        max: usize,
    },
    /// A stored secret version could not be opened or a value not sealed.
    #[error(
        "secret `{name}` version {version} of app `{app}` cannot be opened: {source}. \
         Check that console's secrets key is the cluster key the value was sealed with; \
         a tampered value must be set again"
    )]
    Secret {
        app: String,
        name: String,
        version: i64,
        #[source]
        source: SecretError,
    },
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
    #[error(transparent)]
    Open(#[from] lain_db::DbError),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
}

impl DbError {
    pub(crate) fn invalid(what: &'static str, problem: impl Into<String>) -> Self {
        DbError::Invalid {
            what,
            problem: problem.into(),
        }
    }

    pub(crate) fn not_found(what: &'static str, key: impl Into<String>) -> Self {
        DbError::NotFound {
            what,
            key: key.into(),
            hint: "",
        }
    }

    pub(crate) fn no_app(app: &str) -> Self {
        DbError::NotFound {
            what: "app",
            key: app.to_owned(),
            hint: "; create it first (`lain app create`)",
        }
    }

    /// True for a unique-key violation (a concurrent insert of the same row).
    pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
        matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
    }
}
