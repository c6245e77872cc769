//! Docker Distribution token auth: console is the registry's token
//! server, so that only an app's maintainers (and admins) can push its
//! images, and only they and the cluster's daemons can pull them.
//!
//! The registry is configured with `auth.token`: `realm` is console's
//! `/api/v1/registry/token`, `service` and `issuer` as in `[registry_auth]`,
//! and `rootcertbundle` is [`RegistryAuthConfig::cert_file`]. Tokens are
//! ES256 JWTs that carry the signing certificate in `x5c`; the registry
//! checks that certificate against its bundle, then the signature, the
//! issuer, the audience (the service) and the expiry.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The `[registry_auth]` section of console's config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryAuthConfig {
    /// The registry's `auth.token.service` (the tokens' audience).
    #[serde(default = "default_service")]
    pub service: String,
    /// The registry's `auth.token.issuer` (the tokens' `iss`).
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// The signing key (PKCS#8 PEM, ECDSA P-256, mode 0600). Created with
    /// its certificate at first start when neither file exists.
    pub key_file: PathBuf,
    /// Its certificate (PEM): the registry's `auth.token.rootcertbundle`.
    pub cert_file: PathBuf,
    /// How long a token is valid, in seconds (10..=3600).
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
}

fn default_service() -> String {
    "lain-registry".to_owned()
}

fn default_issuer() -> String {
    "lain-console".to_owned()
}

fn default_ttl() -> u64 {
    300
}

/// Why the token signer could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error(transparent)]
    File(#[from] lain_service::PrivateFileError),
    #[error("[registry_auth] {0}")]
    Config(String),
    #[error("cannot read cert_file {path}: {detail}")]
    Cert { path: PathBuf, detail: String },
    #[error("key_file {key} is not a PKCS#8 PEM ECDSA P-256 key: {detail}")]
    Key { key: PathBuf, detail: String },
    #[error("cert_file {cert} is not the certificate of key_file {key}: give the pair that belongs together, or remove both to have console create a new pair (then restart the registry so it reads the new cert_file)")]
    Mismatch { key: PathBuf, cert: PathBuf },
    #[error("cannot create the registry token key: {0}")]
    Generate(String),
}

/// Signs registry tokens. Cheap to share behind an `Arc`.
pub struct TokenSigner {
    service: String,
    issuer: String,
    ttl: Duration,
    key: EncodingKey,
    /// The certificate, base64 DER, for the `x5c` header.
    x5c: String,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("service", &self.service)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

const CERT_SUBJECT: &str = "lain console registry token signer";

impl TokenSigner {
    /// Loads the key and certificate, creating both when neither exists.
    pub fn load_or_create(config: &RegistryAuthConfig) -> Result<TokenSigner, SignerError> {
        if config.service.trim().is_empty() || config.issuer.trim().is_empty() {
            return Err(SignerError::Config(
                "service and issuer must not be empty: give the values of the registry's auth.token section".into(),
            ));
        }
        if !(10..=3600).contains(&config.ttl_secs) {
            return Err(SignerError::Config(format!(
                "ttl_secs {} is out of range: give 10 to 3600",
                config.ttl_secs
            )));
        }
        let (key_there, cert_there) = (config.key_file.exists(), config.cert_file.exists());
        if !key_there && !cert_there {
            create_pair(config)?;
        } else if key_there != cert_there {
            let (have, missing) = if key_there {
                (&config.key_file, &config.cert_file)
            } else {
                (&config.cert_file, &config.key_file)
            };
            return Err(SignerError::Config(format!(
                "{} exists but {} does not: restore it, or remove both to have console create a new pair",
                have.display(),
                missing.display()
            )));
        }
        let key_pem = lain_service::read_private_file(&config.key_file, "key_file", 16 * 1024)?;
        let key_err = |detail: String| SignerError::Key {
            key: config.key_file.clone(),
            detail,
        };
        let key_text = std::str::from_utf8(&key_pem).map_err(|e| key_err(e.to_string()))?;
        let pair = rcgen::KeyPair::from_pem(key_text).map_err(|e| key_err(e.to_string()))?;
        if !pair.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
            return Err(key_err("it is not an ECDSA P-256 key".into()));
        }
        let cert_err = |detail: String| SignerError::Cert {
            path: config.cert_file.clone(),
            detail,
        };
        let cert_text = std::fs::read(&config.cert_file).map_err(|e| cert_err(e.to_string()))?;
        let cert = pem::parse(&cert_text).map_err(|e| cert_err(e.to_string()))?;
        if cert.tag() != "CERTIFICATE" {
            return Err(cert_err(format!(
                "the PEM block is `{}`, not `CERTIFICATE`",
                cert.tag()
            )));
        }
        // The certificate's SubjectPublicKeyInfo holds the raw public
        // point verbatim: a cheap check that the two files belong together.
        let public = pair.public_key_raw();
        if !cert.contents().windows(public.len()).any(|w| w == public) {
            return Err(SignerError::Mismatch {
                key: config.key_file.clone(),
                cert: config.cert_file.clone(),
            });
        }
        let key =
            EncodingKey::from_ec_pem(key_text.as_bytes()).map_err(|e| key_err(e.to_string()))?;
        Ok(TokenSigner {
            service: config.service.clone(),
            issuer: config.issuer.clone(),
            ttl: Duration::from_secs(config.ttl_secs),
            key,
            x5c: B64.encode(cert.contents()),
        })
    }

    /// The service tokens are for.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Signs a token for `subject` granting `access`.
    pub fn sign(&self, subject: &str, access: Vec<Access>) -> Result<IssuedToken, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("JWT".into());
        header.x5c = Some(vec![self.x5c.clone()]);
        let claims = RegistryClaims {
            iss: &self.issuer,
            sub: subject,
            // Distribution 2.8 reads `aud` as one string.
            aud: &self.service,
            exp: now + self.ttl.as_secs(),
            // A little slack for registries whose clock is behind.
            nbf: now.saturating_sub(10),
            iat: now,
            jti: random_id(),
            access,
        };
        let token = jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| e.to_string())?;
        Ok(IssuedToken {
            access_token: token.clone(),
            token,
            expires_in: self.ttl.as_secs(),
        })
    }
}

fn create_pair(config: &RegistryAuthConfig) -> Result<(), SignerError> {
    let gen = |e: rcgen::Error| SignerError::Generate(e.to_string());
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(gen)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, CERT_SUBJECT);
    // Its own root: the registry's bundle holds exactly this certificate.
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    let cert = params.self_signed(&pair).map_err(gen)?;
    let key_pem = zeroize::Zeroizing::new(pair.serialize_pem());
    lain_service::create_private_file(&config.key_file, "key_file", key_pem.as_bytes())?;
    if let Err(e) = std::fs::write(&config.cert_file, cert.pem()) {
        // Leave neither, so that the next start creates a fresh pair.
        let _ = std::fs::remove_file(&config.key_file);
        return Err(SignerError::Cert {
            path: config.cert_file.clone(),
            detail: e.to_string(),
        });
    }
    tracing::info!(key = %config.key_file.display(), cert = %config.cert_file.display(),
        "created the registry token key and certificate; give cert_file to the registry as auth.token.rootcertbundle");
    Ok(())
}

fn random_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Serialize)]
struct RegistryClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: Vec<Access>,
}

/// One grant in a token: a resource and the actions allowed on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Access {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository (`APP` or `APP/...`), or `catalog`.
    pub name: String,
    pub actions: Vec<String>,
}

/// The token endpoint's answer, in the shape Docker clients read.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuedToken {
    pub token: String,
    /// The same token, under the OAuth2 name.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// A requested scope, `TYPE:NAME:ACTION[,ACTION...]` (NAME may itself
/// hold `:`, as in `host:port/repo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Scope {
    /// Parses one scope; `None` for a malformed one (the spec says to
    /// ignore what cannot be granted rather than fail the request).
    pub fn parse(s: &str) -> Option<Scope> {
        let (kind, rest) = s.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if kind.is_empty() || name.is_empty() || actions.is_empty() || s.len() > 512 {
            return None;
        }
        // `repository(plugin)` and the like: the class does not matter here.
        let kind = kind.split('(').next().unwrap_or(kind);
        Some(Scope {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    /// The app a repository scope is about: the first path component of
    /// the name, when it is a valid app name.
    pub fn app(&self) -> Option<&str> {
        if self.kind != "repository" {
            return None;
        }
        let app = self.name.split('/').next()?;
        crate::db::validate::app_name(app).ok().map(|_| app)
    }
}

/// What a caller may do to repositories: the rule, apart from the
/// database lookups that tell whether the caller maintains an app.
#[derive(Debug, Clone, Copy)]
pub struct Rights {
    pub admin: bool,
    pub daemon: bool,
    pub maintainer: bool,
}

/// The actions of `scope` that `rights` allow: push for maintainers and
/// admins, pull also for daemons (nodes pulling images), delete and the
/// catalog for admins only.
pub fn grant(scope: &Scope, rights: Rights) -> Vec<String> {
    let allowed = |action: &str| match (scope.kind.as_str(), action) {
        ("repository", "pull") => rights.admin || rights.maintainer || rights.daemon,
        ("repository", "push") => rights.admin || rights.maintainer,
        ("repository", "delete" | "*") => rights.admin,
        ("registry", "*") => rights.admin && scope.name == "catalog",
        _ => false,
    };
    if scope.kind == "repository" && scope.app().is_none() {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for a in &scope.actions {
        if allowed(a) && !out.contains(a) {
            out.push(a.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse() {
        let s = Scope::parse("repository:hello:pull,push").unwrap();
        assert_eq!((s.kind.as_str(), s.name.as_str()), ("repository", "hello"));
        assert_eq!(s.actions, ["pull", "push"]);
        assert_eq!(s.app(), Some("hello"));
        let s = Scope::parse("repository:hello/build:pull").unwrap();
        assert_eq!(s.app(), Some("hello"));
        let s = Scope::parse("repository(plugin):host:5000/x:pull").unwrap();
        assert_eq!(
            (s.kind.as_str(), s.name.as_str()),
            ("repository", "host:5000/x")
        );
        assert_eq!(Scope::parse("registry:catalog:*").unwrap().actions, ["*"]);
        for bad in [
            "",
            "repository",
            "repository:hello",
            ":x:pull",
            "repository::pull",
            "repository:x:",
        ] {
            assert_eq!(Scope::parse(bad), None, "{bad}");
        }
        assert_eq!(Scope::parse("repository:../x:pull").unwrap().app(), None);
    }

    #[test]
    fn grants_follow_the_rights() {
        let scope = |s: &str| Scope::parse(s).unwrap();
        let none = Rights {
            admin: false,
            daemon: false,
            maintainer: false,
        };
        let maint = Rights {
            maintainer: true,
            ..none
        };
        let daemon = Rights {
            daemon: true,
            ..none
        };
        let admin = Rights {
            admin: true,
            ..none
        };
        let pp = scope("repository:hello:pull,push,pull");
        assert!(grant(&pp, none).is_empty());
        assert_eq!(grant(&pp, maint), ["pull", "push"]);
        assert_eq!(grant(&pp, daemon), ["pull"]);
        assert_eq!(grant(&pp, admin), ["pull", "push"]);
        assert!(grant(&scope("repository:hello:delete"), maint).is_empty());
        assert_eq!(grant(&scope("repository:hello:delete"), admin), ["delete"]);
        assert!(grant(&scope("registry:catalog:*"), maint).is_empty());
        assert_eq!(grant(&scope("registry:catalog:*"), admin), ["*"]);
        assert!(grant(&scope("registry:other:*"), admin).is_empty());
        assert!(grant(&scope("repository:Bad..Name:pull"), admin).is_empty());
    }

    fn config(dir: &std::path::Path) -> RegistryAuthConfig {
        RegistryAuthConfig {
            service: default_service(),
            issuer: default_issuer(),
            key_file: dir.join("reg.key"),
            cert_file: dir.join("reg.crt"),
            ttl_secs: 300,
        }
    }

    #[test]
    fn the_pair_is_created_once_and_checked() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let s = TokenSigner::load_or_create(&c).unwrap();
        let mode = std::fs::metadata(&c.key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let cert = std::fs::read(&c.cert_file).unwrap();
        // Loading again keeps the pair.
        TokenSigner::load_or_create(&c).unwrap();
        assert_eq!(std::fs::read(&c.cert_file).unwrap(), cert);

        let t = s
            .sign(
                "alice",
                vec![Access {
                    kind: "repository".into(),
                    name: "hello".into(),
                    actions: vec!["push".into()],
                }],
            )
            .unwrap();
        assert_eq!(t.token, t.access_token);
        let header = jsonwebtoken::decode_header(&t.token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        let x5c = header.x5c.unwrap();
        assert_eq!(
            B64.decode(&x5c[0]).unwrap(),
            pem::parse(&cert).unwrap().contents()
        );
        let payload = t.token.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["aud"], "lain-registry");
        assert_eq!(claims["iss"], "lain-console");
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["access"][0]["type"], "repository");
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            300
        );

        // A certificate of another key is refused, as is half a pair.
        let other = tempfile::tempdir().unwrap();
        let c2 = config(other.path());
        TokenSigner::load_or_create(&c2).unwrap();
        std::fs::copy(&c2.cert_file, &c.cert_file).unwrap();
        let e = TokenSigner::load_or_create(&c).unwrap_err();
        assert!(matches!(e, SignerError::Mismatch { .. }), "{e}");
        std::fs::remove_file(&c.cert_file).unwrap();
        let e = TokenSigner::load_or_create(&c).unwrap_err().to_string();
        assert!(e.contains("does not: restore it"), "{e}");
        let e = TokenSigner::load_or_create(&RegistryAuthConfig { ttl_secs: 1, ..c2 })
            .unwrap_err()
            .to_string();
        assert!(e.contains("ttl_secs 1"), "{e}");
    }
}
