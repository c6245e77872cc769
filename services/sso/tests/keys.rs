//! Private signing keys at rest: encrypted with `keys.encryption_key_file`
//! when it is set, and unusable without the right key.

use sqlx::Row;

fn config(kek: Option<&std::path::Path>) -> sso::config::Config {
    let mut text =
        "listen = \"127.0.0.1:1\"\n[password_hash]\nmemory_kib = 64\niterations = 1\n".to_owned();
    if let Some(p) = kek {
        text.push_str(&format!(
            "[keys]\nencryption_key_file = \"{}\"\n",
            p.display()
        ));
    }
    lain_service::parse_config(std::path::Path::new("t.toml"), &text).unwrap()
}

#[tokio::test]
async fn signing_keys_are_encrypted_with_the_configured_key() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sso.db?mode=rwc", dir.path().display());
    let kek = dir.path().join("kek");
    std::fs::write(&kek, sso::keys::new_kek()).unwrap();
    let sso = sso::Sso::open(config(Some(&kek)), &url)
        .await
        .expect("starts with a key file");
    let kid = sso.state().keys.active_kid().unwrap();
    let row = sqlx::query("SELECT private_pkcs8 FROM signing_keys")
        .fetch_one(&sso.state().db.pool)
        .await
        .unwrap();
    let stored: String = row.try_get("private_pkcs8").unwrap();
    assert!(stored.starts_with("aes256gcm:"), "stored encrypted");
    drop(sso);

    let e = sso::Sso::open(config(None), &url)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(&kid) && e.contains("encryption_key_file"), "{e}");
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, sso::keys::new_kek()).unwrap();
    let e = sso::Sso::open(config(Some(&wrong)), &url)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot decrypt"), "{e}");
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "too short").unwrap();
    let e = sso::Sso::open(config(Some(&bad)), &url)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("32 bytes"), "{e}");

    let again = sso::Sso::open(config(Some(&kek)), &url).await.unwrap();
    assert_eq!(again.state().keys.active_kid().unwrap(), kid);
    let jwt = again
        .state()
        .keys
        .sign(
            "JWT",
            &serde_json::json!({"iss": "i", "exp": sso::now() + 60}),
        )
        .unwrap();
    assert!(again.state().keys.verify(&jwt, "i").is_ok());
}

#[tokio::test]
async fn keys_rotate_by_age_and_retired_keys_leave_the_jwks_after_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sso.db?mode=rwc", dir.path().display());
    let sso = sso::Sso::open(config(None), &url).await.unwrap();
    let keys = &sso.state().keys;
    let pool = &sso.state().db.pool;
    let first = keys.active_kid().unwrap();
    // Not yet due: refresh keeps the key.
    keys.refresh().await.unwrap();
    assert_eq!(keys.active_kid().unwrap(), first);
    let old_token = keys
        .sign(
            "JWT",
            &serde_json::json!({"iss": "i", "exp": sso::now() + 600}),
        )
        .unwrap();
    // Make the key older than rotation_secs (30 days by default).
    sqlx::query("UPDATE signing_keys SET created_at = created_at - 31 * 24 * 3600")
        .execute(pool)
        .await
        .unwrap();
    keys.refresh().await.unwrap();
    let second = keys.active_kid().unwrap();
    assert_ne!(second, first, "rotated by age");
    let kids = |v: std::sync::Arc<serde_json::Value>| -> Vec<String> {
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(kids(keys.jwks().unwrap()).len(), 2);
    assert!(
        keys.verify(&old_token, "i").is_ok(),
        "old tokens still verify"
    );
    // Once its tokens must have expired, the retired key is deleted.
    let row = sqlx::query("SELECT expires_at FROM signing_keys WHERE kid = $1")
        .bind(&first)
        .fetch_one(pool)
        .await
        .unwrap();
    let exp: i64 = row.try_get("expires_at").unwrap();
    assert!(
        exp >= sso::now() + 600,
        "published for the longest token life"
    );
    sqlx::query("UPDATE signing_keys SET expires_at = $1 WHERE kid = $2")
        .bind(sso::now() - 1)
        .bind(&first)
        .execute(pool)
        .await
        .unwrap();
    keys.refresh().await.unwrap();
    assert_eq!(kids(keys.jwks().unwrap()), vec![second]);
    assert!(keys.verify(&old_token, "i").is_err());
}
