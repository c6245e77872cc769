//! The place backups are kept: a directory or an S3-compatible bucket,
//! both through `object_store`, so everything above this module is the
//! same for either.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use tokio::io::{AsyncRead, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::StreamReader;

use crate::config::{S3Config, TargetConfig};
use crate::error::{Error, Result};

/// Multipart uploads send parts of this size (S3 wants at least 5 MiB).
const PART_SIZE: usize = 8 << 20;
/// Parts in flight at once per upload; bounds the memory of an upload.
const UPLOAD_CONCURRENCY: usize = 4;

/// Where backups are kept.
#[derive(Clone)]
pub struct Target {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    label: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("label", &self.label)
            .finish()
    }
}

impl Target {
    /// Opens the target a configuration names.
    pub fn open(config: &TargetConfig) -> Result<Self> {
        match config {
            TargetConfig::Dir(d) => Self::dir(&d.path),
            TargetConfig::S3(s3) => Self::s3(s3),
        }
    }

    /// A directory on this machine, created (mode 0700: backups hold app
    /// data) if missing.
    pub fn dir(path: &std::path::Path) -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        if !path.is_absolute() {
            return Err(Error::Config(format!(
                "dir target path {} must be absolute",
                path.display()
            )));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|e| {
                Error::Config(format!(
                    "cannot create the backup directory {}: {e} (create it, or give the daemon write access to its parent)",
                    path.display()
                ))
            })?;
        let store = LocalFileSystem::new_with_prefix(path).map_err(|e| {
            Error::Config(format!(
                "cannot use {} as a backup directory: {e}",
                path.display()
            ))
        })?;
        Ok(Self {
            store: Arc::new(store),
            prefix: Path::default(),
            label: format!("dir {}", path.display()),
        })
    }

    /// A bucket of an S3-compatible store. Nothing is sent until the first
    /// operation.
    pub fn s3(config: &S3Config) -> Result<Self> {
        // The S3 client's TLS uses the process's rustls provider: ring, as
        // everywhere in lain. Installing it is a no-op when one is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let endpoint = config.endpoint.trim_end_matches('/');
        let http = endpoint.starts_with("http://");
        if !http && !endpoint.starts_with("https://") {
            return Err(Error::Config(format!(
                "s3 endpoint `{endpoint}` must start with https:// (or http:// with allow_http = true)"
            )));
        }
        if http && !config.allow_http {
            return Err(Error::Config(format!(
                "s3 endpoint `{endpoint}` is plain http: use https, or set allow_http = true (test servers only: the credentials and backups would cross the network in clear)"
            )));
        }
        if config.bucket.is_empty() {
            return Err(Error::Config("s3 bucket is empty".to_owned()));
        }
        let prefix = Path::parse(config.prefix.trim_matches('/')).map_err(|e| {
            Error::Config(format!(
                "s3 prefix `{}` is not a valid object path: {e}",
                config.prefix
            ))
        })?;
        let secret = config.secret()?;
        let store = AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_region(&config.region)
            .with_bucket_name(&config.bucket)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(secret.expose())
            .with_allow_http(config.allow_http)
            .with_virtual_hosted_style_request(config.virtual_hosted_style)
            .with_retry(RetryConfig {
                max_retries: 4,
                retry_timeout: Duration::from_secs(60),
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(config.allow_http)
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(Duration::from_secs(300)),
            )
            .build()
            .map_err(|e| Error::Config(format!("s3 target: {e}")))?;
        let label = if prefix.as_ref().is_empty() {
            format!("s3 {endpoint}/{}", config.bucket)
        } else {
            format!("s3 {endpoint}/{}/{prefix}", config.bucket)
        };
        Ok(Self {
            store: Arc::new(store),
            prefix,
            label,
        })
    }

    /// Says which target this is, for messages: `dir /path` or
    /// `s3 ENDPOINT/BUCKET[/PREFIX]`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The object path of `rel` (`a/b/c`, parts already validated).
    fn path(&self, rel: &str) -> Path {
        rel.split('/')
            .filter(|p| !p.is_empty())
            .fold(self.prefix.clone(), |p, part| p.join(part))
    }

    fn storage_error(&self, op: &'static str, location: &Path, error: impl ToString) -> Error {
        Error::Storage {
            target: self.label.clone(),
            op,
            location: location.to_string(),
            error: error.to_string(),
        }
    }

    pub(crate) async fn put_bytes(&self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        let path = self.path(rel);
        self.store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|e| self.storage_error("upload", &path, e))?;
        Ok(())
    }

    /// Uploads a spooled file from its start, in parts when it is large.
    pub(crate) async fn put_file(&self, rel: &str, file: std::fs::File) -> Result<()> {
        let path = self.path(rel);
        let mut file = tokio::fs::File::from_std(file);
        file.seek(io::SeekFrom::Start(0))
            .await
            .map_err(|e| Error::io("rewinding a spool file", e))?;
        let mut writer = BufWriter::with_capacity(self.store.clone(), path.clone(), PART_SIZE)
            .with_max_concurrency(UPLOAD_CONCURRENCY);
        let copied = async {
            tokio::io::copy(&mut file, &mut writer).await?;
            writer.shutdown().await
        }
        .await;
        if let Err(e) = copied {
            // Leaves no half-finished multipart upload behind.
            let _ = writer.abort().await;
            return Err(self.storage_error("upload", &path, e));
        }
        Ok(())
    }

    /// A small object, or `None` if it does not exist. Objects over `max`
    /// bytes are refused rather than read into memory.
    pub(crate) async fn get_bytes(&self, rel: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let path = self.path(rel);
        let got = match self.store.get(&path).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.storage_error("download", &path, e)),
        };
        if got.meta.size > max {
            return Err(Error::Corrupt {
                location: path.to_string(),
                reason: format!(
                    "it is {} bytes, more than the {max} expected",
                    got.meta.size
                ),
            });
        }
        let bytes = got
            .bytes()
            .await
            .map_err(|e| self.storage_error("download", &path, e))?;
        Ok(Some(bytes.to_vec()))
    }

    /// Streams an object.
    pub(crate) async fn get_reader(
        &self,
        rel: &str,
    ) -> Result<impl AsyncRead + Send + Unpin + 'static> {
        let path = self.path(rel);
        let got = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.storage_error("download", &path, e))?;
        Ok(StreamReader::new(
            got.into_stream().map_err(io::Error::other),
        ))
    }

    /// Names of the directories right under `rel`.
    pub(crate) async fn list_dirs(&self, rel: &str) -> Result<Vec<String>> {
        let path = self.path(rel);
        let listed = self
            .store
            .list_with_delimiter(Some(&path))
            .await
            .map_err(|e| self.storage_error("list", &path, e))?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect())
    }

    /// Every object under `rel`, as paths relative to `rel`.
    pub(crate) async fn list_files(&self, rel: &str) -> Result<Vec<String>> {
        let path = self.path(rel);
        let metas: Vec<_> = self
            .store
            .list(Some(&path))
            .try_collect()
            .await
            .map_err(|e| self.storage_error("list", &path, e))?;
        Ok(metas
            .iter()
            .filter_map(|m| {
                let parts = m.location.prefix_match(&path)?;
                let rel: Vec<String> = parts.map(|p| p.as_ref().to_owned()).collect();
                Some(rel.join("/"))
            })
            .collect())
    }

    /// Deletes objects; ones already gone are fine.
    pub(crate) async fn delete(&self, rels: &[String]) -> Result<()> {
        let results: Vec<Result<()>> = futures::stream::iter(rels)
            .map(|rel| async move {
                let path = self.path(rel);
                match self.store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(self.storage_error("delete", &path, e)),
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        results.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretString;

    fn s3(endpoint: &str, allow_http: bool) -> S3Config {
        S3Config {
            endpoint: endpoint.into(),
            region: "us-east-1".into(),
            bucket: "b".into(),
            access_key_id: "a".into(),
            secret_access_key: Some(SecretString::new("s")),
            secret_access_key_file: None,
            allow_http,
            prefix: "/p/q/".into(),
            virtual_hosted_style: false,
        }
    }

    #[test]
    fn s3_config_is_checked() {
        let err = Target::s3(&s3("http://127.0.0.1:9000", false))
            .unwrap_err()
            .to_string();
        assert!(err.contains("allow_http"), "{err}");
        let err = Target::s3(&s3("ftp://x", true)).unwrap_err().to_string();
        assert!(err.contains("https://"), "{err}");
        let t = Target::s3(&s3("https://s3.example.com/", false)).unwrap();
        assert_eq!(t.label(), "s3 https://s3.example.com/b/p/q");
        assert_eq!(t.path("x/y").as_ref(), "p/q/x/y");
        let empty = S3Config {
            bucket: String::new(),
            ..s3("https://s3.example.com", false)
        };
        assert!(Target::s3(&empty).is_err());
    }

    #[test]
    fn dir_target_is_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        let t = Target::open(&TargetConfig::Dir(crate::DirConfig { path: dir.clone() })).unwrap();
        assert!(t.label().ends_with("a/b"));
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let err = Target::dir(std::path::Path::new("relative"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absolute"), "{err}");
    }
}
