//! TLS certificates the routers serve: the backend of `lain cert
//! set|list|rm`. `/lain/certs/{name}` is console's; webrouter reads it and
//! serves each certificate for the names it covers.
//!
//! An upload is checked completely before anything is written: the chain
//! parses, the leaf names DNS names (its subjectAltName) and is not
//! expired, and the private key (PKCS#8 PEM) is the leaf's. The key is
//! sealed under the cluster secrets key, bound to the etcd path, before
//! it is written; it is never returned or logged. Listing, setting and
//! removing: admins only; changes are audited (`cert.set`, `cert.remove`;
//! target = the certificate's name).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use lain_store::secret::seal_for;
use lain_store::{unix_millis, CertKey, KeyPrefix, TlsCertificate};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use zeroize::Zeroizing;

use super::{body, store_error, Api, Audited, Ctx};
use crate::error::{ApiError, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(list_certs))
        .routes(routes!(set_cert, remove_cert))
}

/// Largest certificate chain accepted (PEM).
pub const MAX_CHAIN_BYTES: usize = 64 * 1024;
/// Largest private key accepted (PEM).
pub const MAX_KEY_BYTES: usize = 16 * 1024;

/// What `PUT /api/v1/certs/{name}` takes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutCert {
    /// The PEM chain, leaf first.
    pub cert_pem: String,
    /// The leaf's private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub key_pem: String,
}

/// A certificate as listed: never its private key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CertView {
    pub name: String,
    /// The DNS names it serves (exact or `*.domain`).
    pub domains: Vec<String>,
    /// When the leaf expires (ms since the epoch).
    pub not_after_ms: Option<u64>,
}

fn cert_key(name: &str) -> Result<CertKey, ApiError> {
    CertKey::new(name).map_err(|e| {
        ApiError::invalid(
            format!("invalid certificate name: {e}"),
            "name it like a DNS label, e.g. example-com",
        )
    })
}

/// A checked upload: the names the leaf covers and when it expires.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    pub domains: Vec<String>,
    pub not_after_ms: u64,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::invalid(
        message,
        "give the PEM chain (leaf first) and the leaf's private key as PKCS#8 PEM \
         (convert with `openssl pkcs8 -topk8 -nocrypt -in key.pem`)",
    )
}

/// Checks a chain and its key; what the leaf covers.
pub fn check(cert_pem: &str, key_pem: &str, now_ms: u64) -> Result<Checked, ApiError> {
    if cert_pem.len() > MAX_CHAIN_BYTES || key_pem.len() > MAX_KEY_BYTES {
        return Err(bad(format!(
            "the chain or the key is too large (at most {MAX_CHAIN_BYTES} and {MAX_KEY_BYTES} bytes)"
        )));
    }
    let blocks = pem::parse_many(cert_pem.as_bytes())
        .map_err(|e| bad(format!("cert_pem is not PEM: {e}")))?;
    if blocks.is_empty() || blocks.iter().any(|b| b.tag() != "CERTIFICATE") {
        return Err(bad(
            "cert_pem must hold CERTIFICATE blocks only, leaf first",
        ));
    }
    // Every block must parse: one bad intermediate would make every
    // router's `nginx -t` fail.
    for (i, b) in blocks.iter().enumerate().skip(1) {
        X509Certificate::from_der(b.contents()).map_err(|e| {
            bad(format!(
                "certificate {} of the chain does not parse: {e}",
                i + 1
            ))
        })?;
    }
    let (_, leaf) = X509Certificate::from_der(blocks[0].contents())
        .map_err(|e| bad(format!("the leaf certificate does not parse: {e}")))?;
    let mut domains = Vec::new();
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                domains.push(d.to_ascii_lowercase());
            }
        }
    }
    // The names routers serve: DNS names, a wildcard only as the whole
    // first label (webrouter's rule).
    for d in &domains {
        if let Some(p) = lain_spec::domain_problem(d.strip_prefix("*.").unwrap_or(d)) {
            return Err(bad(format!(
                "the leaf certificate names {d:?}, which routers cannot serve: it {p}"
            )));
        }
    }
    if domains.is_empty() {
        return Err(bad(
            "the leaf certificate names no DNS name (subjectAltName); routers match on those",
        ));
    }
    let not_after_ms = u64::try_from(leaf.validity().not_after.timestamp()).unwrap_or(0) * 1000;
    if not_after_ms <= now_ms {
        return Err(bad(format!(
            "the leaf certificate expired ({})",
            leaf.validity().not_after
        )));
    }
    let key =
        pem::parse(key_pem.as_bytes()).map_err(|e| bad(format!("key_pem is not PEM: {e}")))?;
    if key.tag() != "PRIVATE KEY" {
        return Err(bad(format!(
            "key_pem is a {} block; a PKCS#8 PRIVATE KEY is needed",
            key.tag()
        )));
    }
    let der = Zeroizing::new(key.into_contents());
    let pair = rcgen::KeyPair::try_from(der.as_slice())
        .map_err(|e| bad(format!("key_pem is not a usable private key: {e}")))?;
    // Both SubjectPublicKeyInfo DER: the key is the leaf's.
    if pair.public_key_der() != leaf.tbs_certificate.subject_pki.raw {
        return Err(bad(
            "key_pem is not the private key of the leaf certificate",
        ));
    }
    Ok(Checked {
        domains,
        not_after_ms,
    })
}

/// Lists the certificates (names, domains, expiry). Admins only.
#[utoipa::path(get, path = "/api/v1/certs", tag = "certs",
    responses((status = 200, body = [CertView]), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn list_certs(State(api): State<Api>, ctx: Ctx) -> Result<Json<Vec<CertView>>, ApiError> {
    ctx.caller()?.require_admin("manage TLS certificates")?;
    let listed = api
        .store()?
        .list(&KeyPrefix::<CertKey>::all())
        .await
        .map_err(store_error)?;
    Ok(Json(
        listed
            .items
            .into_iter()
            .map(|e| CertView {
                name: e.key.name().to_owned(),
                domains: e.value.domains,
                not_after_ms: e.value.not_after_ms,
            })
            .collect(),
    ))
}

/// Stores a certificate and its key (sealed) for the routers; replaces one
/// of the same name. Admins only.
#[utoipa::path(put, path = "/api/v1/certs/{name}", tag = "certs", request_body = PutCert,
    params(("name" = String, Path, description = "the certificate's name")),
    responses((status = 200, body = CertView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn set_cert(
    State(api): State<Api>,
    ctx: Ctx,
    Path(name): Path<String>,
    b: Result<Json<PutCert>, JsonRejection>,
) -> Result<Json<CertView>, ApiError> {
    Audited::new(&api, &ctx, "cert.set")
        .target(name.clone())
        .run(async {
            ctx.caller()?.require_admin("manage TLS certificates")?;
            let key = cert_key(&name)?;
            let b = body(b)?;
            let key_pem = Zeroizing::new(b.key_pem);
            let checked = check(&b.cert_pem, &key_pem, unix_millis())?;
            let sealed = seal_for(api.secrets_key(), &key, key_pem.as_bytes())
                .map_err(|e| ApiError::Internal(format!("cannot seal the private key: {e}")))?;
            let value = TlsCertificate {
                domains: checked.domains.clone(),
                cert_pem: b.cert_pem,
                key: sealed,
                not_after_ms: Some(checked.not_after_ms),
            };
            api.store()?.put(&key, &value).await.map_err(store_error)?;
            let view = CertView {
                name: name.clone(),
                domains: checked.domains,
                not_after_ms: Some(checked.not_after_ms),
            };
            let detail = json!({"domains": view.domains, "not_after_ms": view.not_after_ms});
            Ok((Json(view), detail))
        })
        .await
}

/// Removes a certificate: the routers stop serving it. Admins only.
#[utoipa::path(delete, path = "/api/v1/certs/{name}", tag = "certs",
    params(("name" = String, Path, description = "the certificate's name")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn remove_cert(
    State(api): State<Api>,
    ctx: Ctx,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    Audited::new(&api, &ctx, "cert.remove")
        .target(name.clone())
        .run(async {
            ctx.caller()?.require_admin("manage TLS certificates")?;
            let key = cert_key(&name)?;
            let store = api.store()?;
            if store.get(&key).await.map_err(store_error)?.is_none() {
                return Err(ApiError::not_found(
                    format!("no certificate `{name}`"),
                    "`lain cert list` shows the certificates",
                ));
            }
            store.delete(&key).await.map_err(store_error)?;
            Ok((StatusCode::NO_CONTENT, json!({})))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_matching_pair_is_accepted_with_its_names() {
        let (cert, key) = pair(&["a.example.com", "*.B.example.com"]);
        let c = check(&cert, &key, unix_millis()).unwrap();
        assert_eq!(c.domains, vec!["a.example.com", "*.b.example.com"]);
        assert!(c.not_after_ms > unix_millis());
    }

    #[test]
    fn only_dns_names_are_served() {
        for ok in [
            "a.example.com",
            "*.example.com",
            "localhost",
            "xn--bcher-kva.example",
        ] {
            let (cert, key) = pair(&[ok]);
            assert!(check(&cert, &key, 0).is_ok(), "{ok}");
        }
        for bad in [
            "*",
            "*.com.",
            "a_b.example.com",
            "foo*.example.com",
            "a..b",
            "-a.b",
            "",
            "*.",
            "a.*.b",
        ] {
            let (cert, key) = pair(&[bad]);
            let e = check(&cert, &key, 0).unwrap_err();
            assert!(e.to_string().contains("routers cannot serve"), "{bad}: {e}");
        }
    }

    #[test]
    fn rsa_pairs_made_by_openssl_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
        let out = std::process::Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=r",
            ])
            .args(["-addext", "subjectAltName=DNS:rsa.example.com", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let (cert, key) = (
            std::fs::read_to_string(cert).unwrap(),
            std::fs::read_to_string(key).unwrap(),
        );
        let c = check(&cert, &key, unix_millis()).unwrap();
        assert_eq!(c.domains, vec!["rsa.example.com"]);
    }

    #[test]
    fn mismatched_or_malformed_input_is_refused_with_the_reason() {
        let (cert, _) = pair(&["a.example.com"]);
        let (_, other_key) = pair(&["a.example.com"]);
        let says = |r: Result<Checked, ApiError>, what: &str| {
            let e = r.unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            assert!(e.to_string().contains(what), "{e}");
        };
        says(check(&cert, &other_key, 0), "not the private key");
        says(check("garbage", &other_key, 0), "CERTIFICATE blocks");
        says(check(&other_key, &other_key, 0), "CERTIFICATE blocks");
        says(check(&cert, &cert, 0), "PKCS#8");
        says(check(&cert, "x", 0), "not PEM");
        says(check(&cert, &other_key, u64::MAX), "expired");
        let big = "A".repeat(MAX_CHAIN_BYTES + 1);
        says(check(&big, &other_key, 0), "too large");
    }
}
