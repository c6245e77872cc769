//! console's storage against both backends it supports: a SQLite file in
//! a temp dir, and a real PostgreSQL from the test kit (Debian's
//! `postgresql`). Every scenario runs on both (see `both!` at the end).

use std::collections::BTreeMap;

use console::db::*;
use lain_store::secret::SecretsKey;
use serde_json::json;
use sqlx::Row;

const SHA1: &str = "0123456789abcdef0123456789abcdef01234567";
const SHA2: &str = "89abcdef0123456789abcdef0123456789abcdef";

#[derive(Debug, Clone, Copy)]
enum Kind {
    Sqlite,
    Postgres,
}

struct TestDb {
    db: Db,
    url: String,
    key: SecretsKey,
    kind: Kind,
    _pg: Option<lain_testkit::Postgres>,
    dir: tempfile::TempDir,
}

impl TestDb {
    async fn start(kind: Kind) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (url, pg) = match kind {
            Kind::Sqlite => (
                format!("sqlite://{}/console.db?mode=rwc", dir.path().display()),
                None,
            ),
            Kind::Postgres => {
                let pg = tokio::task::spawn_blocking(lain_testkit::Postgres::start)
                    .await
                    .unwrap()
                    .expect("postgres starts (install Debian's postgresql)");
                let url = pg.create_database().unwrap();
                (url, Some(pg))
            }
        };
        let key = SecretsKey::generate();
        let db = Db::open(&url, key.clone()).await.unwrap();
        assert_eq!(
            db.backend(),
            match kind {
                Kind::Sqlite => Backend::Sqlite,
                Kind::Postgres => Backend::Postgres,
            }
        );
        Self {
            db,
            url,
            key,
            kind,
            _pg: pg,
            dir,
        }
    }

    /// Another handle on the same database with another secrets key.
    async fn reopen_with(&self, key: SecretsKey) -> Db {
        Db::open(&self.url, key).await.unwrap()
    }

    async fn app(&self, name: &str, owner: &str) -> App {
        self.db
            .apps()
            .create(&NewApp {
                name: name.into(),
                apptype: AppType::App,
                giturl: Some(format!("https://git.example.com/{name}.git")),
                created_by: owner.into(),
            })
            .await
            .unwrap()
    }

    async fn release(&self, app: &str, time: u64, sha: &str) -> Release {
        self.db
            .releases()
            .register(&new_release(app, time, sha, 'a'))
            .await
            .unwrap()
            .release
    }

    /// Every text (and number, as text) of every row of every table.
    async fn all_text(&self) -> Vec<(String, String)> {
        let tables_sql = match self.kind {
            Kind::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table'",
            Kind::Postgres => {
                "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables \
                 WHERE table_schema = 'public'"
            }
        };
        let tables: Vec<String> = sqlx::query(tables_sql)
            .fetch_all(self.db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get("name"))
            .collect();
        assert!(tables.len() >= 9, "{tables:?}");
        let mut out = Vec::new();
        for t in tables {
            for row in sqlx::query(&format!("SELECT * FROM {t}"))
                .fetch_all(self.db.pool())
                .await
                .unwrap()
            {
                for i in 0..row.len() {
                    let text = row
                        .try_get::<Option<String>, _>(i)
                        .ok()
                        .flatten()
                        .or_else(|| {
                            row.try_get::<Option<i64>, _>(i)
                                .ok()
                                .flatten()
                                .map(|n| n.to_string())
                        });
                    if let Some(text) = text {
                        out.push((t.clone(), text));
                    }
                }
            }
        }
        out
    }
}

fn new_release(app: &str, time: u64, sha: &str, digest_char: char) -> NewRelease {
    let version = format!("{time}-{sha}");
    NewRelease {
        app: app.into(),
        image: format!("registry.lain.local/{app}:release-{version}"),
        version,
        digest: format!("sha256:{}", digest_char.to_string().repeat(64)),
        lain_yaml: format!("appname: {app}\nweb:\n  cmd: /bin/serve\n"),
        pushed_by: "alice".into(),
    }
}

fn is_invalid(r: Result<impl std::fmt::Debug, DbError>, what: &str, says: &str) {
    match r {
        Err(e @ DbError::Invalid { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(what) && msg.contains(says), "{msg}");
        }
        other => panic!("expected invalid {what}, got {other:?}"),
    }
}

async fn apps(t: TestDb) {
    let db = &t.db;
    let hello = t.app("hello", "alice").await;
    assert_eq!(hello.apptype, AppType::App);
    assert_eq!(hello.created_by, "alice");
    assert!(hello.created_at > 1_600_000_000_000, "milliseconds");
    let res = db
        .apps()
        .create(&NewApp {
            name: "redis-cache".into(),
            apptype: AppType::Resource,
            giturl: None,
            created_by: "bob".into(),
        })
        .await
        .unwrap();
    assert_eq!(db.apps().get("redis-cache").await.unwrap(), res);
    assert_eq!(db.apps().get("hello").await.unwrap(), hello);
    let names: Vec<_> = db
        .apps()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["hello", "redis-cache"]);
    let mine: Vec<_> = db.apps().list_maintained_by("bob").await.unwrap();
    assert_eq!(mine, vec![res.clone()]);

    // The creator is the first owner.
    assert_eq!(
        db.maintainers().role("hello", "alice").await.unwrap(),
        Some(Role::Owner)
    );

    // Conflicts, also in another letter case.
    let again = NewApp {
        name: "hello".into(),
        apptype: AppType::App,
        giturl: None,
        created_by: "eve".into(),
    };
    let e = db.apps().create(&again).await.unwrap_err();
    assert!(
        matches!(e, DbError::AlreadyExists { what: "app", .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("app `hello` already exists"), "{e}");
    let e = db
        .apps()
        .create(&NewApp {
            name: "Hello".into(),
            ..again.clone()
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("letter case"), "{e}");

    // Validation, with nothing stored.
    for (name, says) in [
        ("1hello", "[a-zA-Z][a-zA-Z0-9]*(-[a-zA-Z0-9]+)*"),
        ("hello_world", "not a valid app name"),
        ("a--b", "not a valid app name"),
        ("service", "reserved"),
        ("portal", "reserved"),
        ("resource", "reserved"),
    ] {
        is_invalid(
            db.apps()
                .create(&NewApp {
                    name: name.into(),
                    ..again.clone()
                })
                .await,
            "app name",
            says,
        );
    }
    is_invalid(
        db.apps()
            .create(&NewApp {
                name: "ok".into(),
                giturl: Some("has space".into()),
                ..again.clone()
            })
            .await,
        "giturl",
        "no spaces",
    );
    is_invalid(
        db.apps()
            .create(&NewApp {
                name: "ok".into(),
                created_by: String::new(),
                ..again.clone()
            })
            .await,
        "created_by",
        "subject",
    );
    assert_eq!(db.apps().list().await.unwrap().len(), 2);

    let e = db.apps().get("nope").await.unwrap_err();
    assert!(matches!(e, DbError::NotFound { what: "app", .. }));
    assert!(
        e.to_string()
            .contains("app `nope` does not exist; create it first"),
        "{e}"
    );

    // Delete cascades to everything but the audit log.
    t.release("hello", 1_700_000_000, SHA1).await;
    db.secrets()
        .set("hello", "TOKEN", b"s3cr3t", "alice")
        .await
        .unwrap();
    db.maintainers()
        .add("hello", "bob", Role::Maintainer, "alice")
        .await
        .unwrap();
    let d = db
        .deployments()
        .create(&NewDeployment {
            app: "hello".into(),
            kind: DeploymentKind::Deploy,
            from_release: None,
            to_release: Some(format!("1700000000-{SHA1}")),
            procs: ProcSelection::All,
            requested_by: "alice".into(),
            generation: Some(1),
            snapshot: DeploymentSnapshot {
                desired: json!({"web": {"image": "x"}}),
                secrets: BTreeMap::from([("TOKEN".into(), 1)]),
            },
        })
        .await
        .unwrap();
    db.audit()
        .record(&NewAuditEntry {
            actor: "alice".into(),
            action: "app.delete".into(),
            app: Some("hello".into()),
            target: None,
            detail: json!({}),
            result: AuditResult::Ok,
            request_id: Some("req-1".into()),
        })
        .await
        .unwrap();
    db.apps().delete("hello").await.unwrap();
    assert!(matches!(
        db.apps().get("hello").await,
        Err(DbError::NotFound { .. })
    ));
    assert!(matches!(
        db.deployments().get(d.id).await,
        Err(DbError::NotFound { .. })
    ));
    assert!(!db
        .maintainers()
        .is_maintainer("hello", "bob")
        .await
        .unwrap());
    assert!(matches!(
        db.apps().delete("hello").await,
        Err(DbError::NotFound { .. })
    ));
    for table in [
        "maintainers",
        "releases",
        "deployments",
        "secrets",
        "secret_versions",
    ] {
        let n: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE app = 'hello'"
        ))
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get("n");
        assert_eq!(n, 0, "{table}");
    }
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM deployment_secrets")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get("n");
    assert_eq!(n, 0);
    let audit = db
        .audit()
        .list(&AuditQuery {
            app: Some("hello".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "the audit log survives the app");

    // The name is free again, and the new app starts empty.
    t.app("hello", "carol").await;
    assert!(db.releases().list("hello", 0).await.unwrap().is_empty());
    assert!(db.secrets().list("hello").await.unwrap().is_empty());
}

async fn maintainers(t: TestDb) {
    let db = &t.db;
    t.app("hello", "alice").await;
    let m = db
        .maintainers()
        .add("hello", "bob", Role::Maintainer, "alice")
        .await
        .unwrap();
    assert_eq!((m.role, m.added_by.as_str()), (Role::Maintainer, "alice"));
    // Adding again is a no-op; with another role it changes the role.
    assert_eq!(
        db.maintainers()
            .add("hello", "bob", Role::Maintainer, "carol")
            .await
            .unwrap(),
        m
    );
    assert!(db
        .maintainers()
        .is_maintainer("hello", "bob")
        .await
        .unwrap());
    assert!(db
        .maintainers()
        .is_maintainer("hello", "alice")
        .await
        .unwrap());
    assert!(!db
        .maintainers()
        .is_maintainer("hello", "eve")
        .await
        .unwrap());
    assert!(!db
        .maintainers()
        .is_maintainer("nope", "alice")
        .await
        .unwrap());
    let list: Vec<_> = db
        .maintainers()
        .list("hello")
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.subject, m.role))
        .collect();
    assert_eq!(
        list,
        [
            ("alice".to_owned(), Role::Owner),
            ("bob".to_owned(), Role::Maintainer)
        ]
    );

    // The last owner can be neither removed nor demoted.
    let e = db.maintainers().remove("hello", "alice").await.unwrap_err();
    assert!(matches!(e, DbError::LastOwner { .. }), "{e:?}");
    assert!(e.to_string().contains("add another owner"), "{e}");
    let e = db
        .maintainers()
        .add("hello", "alice", Role::Maintainer, "alice")
        .await
        .unwrap_err();
    assert!(matches!(e, DbError::LastOwner { .. }), "{e:?}");
    // With a second owner it can.
    db.maintainers()
        .add("hello", "bob", Role::Owner, "alice")
        .await
        .unwrap();
    db.maintainers().remove("hello", "alice").await.unwrap();
    assert!(!db
        .maintainers()
        .is_maintainer("hello", "alice")
        .await
        .unwrap());
    assert!(matches!(
        db.maintainers().remove("hello", "bob").await,
        Err(DbError::LastOwner { .. })
    ));

    let e = db.maintainers().remove("hello", "eve").await.unwrap_err();
    assert!(
        e.to_string()
            .contains("maintainer `eve` of app `hello` does not exist"),
        "{e}"
    );
    assert!(matches!(
        db.maintainers()
            .add("nope", "eve", Role::Owner, "alice")
            .await,
        Err(DbError::NotFound { what: "app", .. })
    ));
    assert!(matches!(
        db.maintainers().list("nope").await,
        Err(DbError::NotFound { what: "app", .. })
    ));
    is_invalid(
        db.maintainers()
            .add("hello", "", Role::Owner, "alice")
            .await,
        "maintainer",
        "subject",
    );

    // Concurrent removals of two owners never leave the app without one.
    db.maintainers()
        .add("hello", "carol", Role::Owner, "bob")
        .await
        .unwrap();
    let (m1, m2) = (db.maintainers(), db.maintainers());
    let (a, b) = tokio::join!(m1.remove("hello", "bob"), m2.remove("hello", "carol"));
    assert!(a.is_ok() != b.is_ok(), "{a:?} {b:?}");
    let owners = db
        .maintainers()
        .list("hello")
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.role == Role::Owner)
        .count();
    assert_eq!(owners, 1);
}

async fn releases(t: TestDb) {
    let db = &t.db;
    t.app("hello", "alice").await;
    assert_eq!(db.releases().latest("hello").await.unwrap(), None);
    let r1 = db
        .releases()
        .register(&new_release("hello", 1_700_000_000, SHA1, 'a'))
        .await
        .unwrap();
    assert!(r1.created);
    // Same content: idempotent, the first push is kept.
    let mut same = new_release("hello", 1_700_000_000, SHA1, 'a');
    same.pushed_by = "bob".into();
    let again = db.releases().register(&same).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.release, r1.release);
    // Different content under the same version: conflict, naming the field.
    for (field, change) in [
        ("digest", new_release("hello", 1_700_000_000, SHA1, 'b')),
        (
            "image",
            NewRelease {
                image: "registry.lain.local/hello:other".into(),
                ..new_release("hello", 1_700_000_000, SHA1, 'a')
            },
        ),
        (
            "lain.yaml",
            NewRelease {
                lain_yaml: "appname: hello\n".into(),
                ..new_release("hello", 1_700_000_000, SHA1, 'a')
            },
        ),
    ] {
        let e = db.releases().register(&change).await.unwrap_err();
        assert!(matches!(e, DbError::ReleaseConflict { .. }), "{e:?}");
        assert!(e.to_string().contains(&format!("different {field}")), "{e}");
    }

    // Newest first by commit time, whatever the push order.
    t.release("hello", 1_600_000_000, SHA2).await;
    let r3 = t.release("hello", 1_800_000_000, SHA2).await;
    let versions: Vec<_> = db
        .releases()
        .list("hello", 0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(
        versions,
        [
            format!("1800000000-{SHA2}"),
            format!("1700000000-{SHA1}"),
            format!("1600000000-{SHA2}")
        ]
    );
    assert_eq!(db.releases().list("hello", 2).await.unwrap().len(), 2);
    assert_eq!(
        db.releases().latest("hello").await.unwrap(),
        Some(r3.clone())
    );
    assert_eq!(db.releases().get("hello", &r3.version).await.unwrap(), r3);
    let e = db
        .releases()
        .get("hello", &format!("1-{SHA1}"))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("does not exist; `lain releases`"),
        "{e}"
    );
    assert!(matches!(
        db.releases().list("nope", 0).await,
        Err(DbError::NotFound { what: "app", .. })
    ));
    assert!(matches!(
        db.releases()
            .register(&new_release("nope", 1, SHA1, 'a'))
            .await,
        Err(DbError::NotFound { what: "app", .. })
    ));

    // Validation.
    let ok = new_release("hello", 1_900_000_000, SHA1, 'a');
    is_invalid(
        db.releases()
            .register(&NewRelease {
                version: "latest".into(),
                ..ok.clone()
            })
            .await,
        "release version",
        "<commit unix time>-<full 40-hex git sha>",
    );
    is_invalid(
        db.releases()
            .register(&NewRelease {
                digest: "sha256:abc".into(),
                ..ok.clone()
            })
            .await,
        "image digest",
        "64 lowercase hex",
    );
    is_invalid(
        db.releases()
            .register(&NewRelease {
                image: String::new(),
                ..ok.clone()
            })
            .await,
        "image",
        "not an image reference",
    );
    let e = db
        .releases()
        .register(&NewRelease {
            lain_yaml: "#".repeat(256 * 1024 + 1),
            ..ok.clone()
        })
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("lain.yaml is 262145 bytes; at most 262144"),
        "{e}"
    );
    assert_eq!(db.releases().list("hello", 0).await.unwrap().len(), 3);
}

async fn deployments(t: TestDb) {
    let db = &t.db;
    t.app("hello", "alice").await;
    let r1 = t.release("hello", 1_700_000_000, SHA1).await;
    let r2 = t.release("hello", 1_700_000_100, SHA2).await;
    let s = db
        .secrets()
        .set("hello", "DB_PASSWORD", b"pw-1", "alice")
        .await
        .unwrap();
    let desired = json!({"web": {"image": r1.image, "instances": 2, "env": {"A": "1"}}});
    let first = db
        .deployments()
        .create(&NewDeployment {
            app: "hello".into(),
            kind: DeploymentKind::Deploy,
            from_release: None,
            to_release: Some(r1.version.clone()),
            procs: ProcSelection::All,
            requested_by: "alice".into(),
            generation: None,
            snapshot: DeploymentSnapshot {
                desired: desired.clone(),
                secrets: BTreeMap::from([("DB_PASSWORD".into(), s.version)]),
            },
        })
        .await
        .unwrap();
    assert_eq!(first.state, DeploymentState::Pending);
    assert_eq!(first.finished_at, None);
    assert_eq!(db.deployments().get(first.id).await.unwrap(), first);

    let p = db
        .deployments()
        .update(
            first.id,
            &DeploymentUpdate {
                state: DeploymentState::Progressing,
                error: None,
                generation: Some(7),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (p.state, p.generation, p.finished_at),
        (DeploymentState::Progressing, Some(7), None)
    );
    let done = db
        .deployments()
        .update(
            first.id,
            &DeploymentUpdate {
                state: DeploymentState::Succeeded,
                error: None,
                generation: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(done.state, DeploymentState::Succeeded);
    assert_eq!(done.generation, Some(7), "kept");
    assert!(done.finished_at.unwrap() >= done.started_at);
    assert_eq!(done.snapshot.desired, desired);
    assert_eq!(done.snapshot.secrets["DB_PASSWORD"], 1);
    // A finished deployment does not change again.
    let e = db
        .deployments()
        .update(
            first.id,
            &DeploymentUpdate {
                state: DeploymentState::Failed,
                error: Some("late".into()),
                generation: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, DbError::InvalidTransition { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("is succeeded and cannot become failed"),
        "{e}"
    );

    // A second deploy of some procs fails and rolls back.
    let second = db
        .deployments()
        .create(&NewDeployment {
            app: "hello".into(),
            kind: DeploymentKind::Deploy,
            from_release: Some(r1.version.clone()),
            to_release: Some(r2.version.clone()),
            procs: ProcSelection::Only(vec!["web".into(), "worker.mail".into()]),
            requested_by: "bob".into(),
            generation: Some(8),
            snapshot: DeploymentSnapshot::default(),
        })
        .await
        .unwrap();
    assert!(second.id > first.id);
    let rb = db
        .deployments()
        .update(
            second.id,
            &DeploymentUpdate {
                state: DeploymentState::RolledBack,
                error: Some("web: 0 of 2 instances became healthy in 30s".into()),
                generation: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        rb.error.as_deref(),
        Some("web: 0 of 2 instances became healthy in 30s")
    );
    assert_eq!(
        rb.procs,
        ProcSelection::Only(vec!["web".into(), "worker.mail".into()])
    );
    // Back from pending is refused too.
    assert!(matches!(
        db.deployments()
            .update(
                second.id,
                &DeploymentUpdate {
                    state: DeploymentState::Pending,
                    error: None,
                    generation: None
                }
            )
            .await,
        Err(DbError::InvalidTransition { .. })
    ));

    // An undeploy has no release.
    let un = db
        .deployments()
        .create(&NewDeployment {
            app: "hello".into(),
            kind: DeploymentKind::Undeploy,
            from_release: Some(r1.version.clone()),
            to_release: None,
            procs: ProcSelection::All,
            requested_by: "alice".into(),
            generation: None,
            snapshot: DeploymentSnapshot::default(),
        })
        .await
        .unwrap();

    let all = db
        .deployments()
        .list("hello", &DeploymentQuery::default())
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|d| d.id).collect::<Vec<_>>(),
        [un.id, second.id, first.id]
    );
    let ok = db
        .deployments()
        .list(
            "hello",
            &DeploymentQuery {
                state: Some(DeploymentState::Succeeded),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        ok,
        vec![done.clone()],
        "the last good deployment, for a rollback"
    );
    let page = db
        .deployments()
        .list(
            "hello",
            &DeploymentQuery {
                before: Some(un.id),
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.iter().map(|d| d.id).collect::<Vec<_>>(), [second.id]);

    // What is refused.
    let base = NewDeployment {
        app: "hello".into(),
        kind: DeploymentKind::Rollback,
        from_release: None,
        to_release: Some(r1.version.clone()),
        procs: ProcSelection::All,
        requested_by: "alice".into(),
        generation: None,
        snapshot: DeploymentSnapshot::default(),
    };
    let cases: Vec<(NewDeployment, &str)> = vec![
        (
            NewDeployment {
                to_release: None,
                ..base.clone()
            },
            "a rollback needs the release",
        ),
        (
            NewDeployment {
                kind: DeploymentKind::Undeploy,
                ..base.clone()
            },
            "an undeploy has no release",
        ),
        (
            NewDeployment {
                to_release: Some(format!("1-{SHA1}")),
                ..base.clone()
            },
            "release `1-0123",
        ),
        (
            NewDeployment {
                app: "nope".into(),
                ..base.clone()
            },
            "app `nope` does not exist",
        ),
        (
            NewDeployment {
                procs: ProcSelection::Only(vec![]),
                ..base.clone()
            },
            "list of procs is empty",
        ),
        (
            NewDeployment {
                procs: ProcSelection::Only(vec!["web/x".into()]),
                ..base.clone()
            },
            "not a proc name",
        ),
        (
            NewDeployment {
                snapshot: DeploymentSnapshot {
                    desired: json!({}),
                    secrets: BTreeMap::from([("DB_PASSWORD".into(), 9)]),
                },
                ..base.clone()
            },
            "secret version `DB_PASSWORD` version `9`",
        ),
    ];
    for (new, says) in cases {
        let e = db.deployments().create(&new).await.unwrap_err();
        assert!(e.to_string().contains(says), "{says}: {e}");
    }
    assert_eq!(
        db.deployments()
            .list("hello", &DeploymentQuery::default())
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(matches!(
        db.deployments().get(999).await,
        Err(DbError::NotFound { .. })
    ));
}

async fn secrets(t: TestDb) {
    let db = &t.db;
    const V1: &[u8] = b"correct-horse-battery-staple-v1";
    const V2: &[u8] = b"correct-horse-battery-staple-v2";
    t.app("hello", "alice").await;
    t.app("other", "alice").await;
    let s1 = db
        .secrets()
        .set("hello", "DB_PASSWORD", V1, "alice")
        .await
        .unwrap();
    assert_eq!(s1.version, 1);
    let s2 = db
        .secrets()
        .set("hello", "DB_PASSWORD", V2, "bob")
        .await
        .unwrap();
    assert_eq!((s2.version, s2.updated_by.as_str()), (2, "bob"));
    db.secrets()
        .set("hello", "tls.key", b"-----BEGIN KEY-----", "alice")
        .await
        .unwrap();
    db.secrets()
        .set("other", "DB_PASSWORD", b"other-app-value", "alice")
        .await
        .unwrap();

    // List: names and versions only.
    let list = db.secrets().list("hello").await.unwrap();
    assert_eq!(
        list.iter()
            .map(|s| (s.name.as_str(), s.version))
            .collect::<Vec<_>>(),
        [("DB_PASSWORD", 2), ("tls.key", 1)]
    );
    let shown = format!("{list:?} {}", serde_json::to_string(&list).unwrap());
    assert!(!shown.contains("correct-horse"), "{shown}");

    // Values round-trip, every version.
    assert_eq!(
        &db.secrets()
            .get_value("hello", "DB_PASSWORD", 1)
            .await
            .unwrap()[..],
        V1
    );
    assert_eq!(
        &db.secrets()
            .get_value("hello", "DB_PASSWORD", 2)
            .await
            .unwrap()[..],
        V2
    );
    let (v, value) = db
        .secrets()
        .get_current("hello", "DB_PASSWORD")
        .await
        .unwrap();
    assert_eq!((v, &value[..]), (2, V2));
    assert_eq!(
        &db.secrets()
            .get_value("other", "DB_PASSWORD", 1)
            .await
            .unwrap()[..],
        b"other-app-value"
    );
    let e = db
        .secrets()
        .get_value("hello", "DB_PASSWORD", 3)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("secret `DB_PASSWORD` version `3` of app `hello` does not exist"),
        "{e}"
    );

    // Nothing stored holds a value in plaintext: scan every table (the
    // scan does see the sealed rows: their key id is there).
    let texts = t.all_text().await;
    assert!(texts
        .iter()
        .any(|(table, text)| table == "secret_versions" && text == db.secrets_key_id()));
    for (table, text) in texts {
        assert!(
            !text.contains("correct-horse"),
            "plaintext in {table}: {text}"
        );
        assert!(!text.contains("BEGIN KEY"), "plaintext in {table}");
    }
    // Nor does the SQLite file (and its WAL) anywhere.
    if let Kind::Sqlite = t.kind {
        let mut names_seen = false;
        for f in std::fs::read_dir(t.dir.path()).unwrap() {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            assert!(!bytes.windows(13).any(|w| w == b"correct-horse"));
            names_seen |= bytes.windows(11).any(|w| w == b"DB_PASSWORD");
        }
        assert!(names_seen, "the scan reads the stored rows");
    }

    // Remove is a soft delete: gone from the list, versions kept for rollback.
    db.secrets()
        .remove("hello", "DB_PASSWORD", "alice")
        .await
        .unwrap();
    assert_eq!(
        db.secrets()
            .list("hello")
            .await
            .unwrap()
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["tls.key"]
    );
    assert_eq!(
        &db.secrets()
            .get_value("hello", "DB_PASSWORD", 1)
            .await
            .unwrap()[..],
        V1
    );
    assert!(matches!(
        db.secrets().get_current("hello", "DB_PASSWORD").await,
        Err(DbError::NotFound { .. })
    ));
    let e = db
        .secrets()
        .remove("hello", "DB_PASSWORD", "alice")
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("secret `DB_PASSWORD` of app `hello` does not exist"),
        "{e}"
    );
    // Setting it again continues the numbering: version 3, never a reuse.
    let s3 = db
        .secrets()
        .set("hello", "DB_PASSWORD", b"v3", "alice")
        .await
        .unwrap();
    assert_eq!(s3.version, 3);

    // Validation; no message quotes a value.
    is_invalid(
        db.secrets().set("hello", "a/b", b"x", "alice").await,
        "secret name",
        "A-Z a-z 0-9 _ . -",
    );
    is_invalid(
        db.secrets().set("hello", "", b"x", "alice").await,
        "secret name",
        "1 to 128",
    );
    let big = vec![b'q'; 64 * 1024 + 1];
    let e = db
        .secrets()
        .set("hello", "BIG", &big, "alice")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("at most 65536") && !e.to_string().contains("qqqq"),
        "{e}"
    );
    assert!(matches!(
        db.secrets().set("nope", "A", b"x", "alice").await,
        Err(DbError::NotFound { what: "app", .. })
    ));

    // A value moved to another row does not open.
    let row = sqlx::query(
        "SELECT nonce_b64, ciphertext_b64 FROM secret_versions \
         WHERE app = 'hello' AND name = 'DB_PASSWORD' AND version = 1",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    let (nonce, ct): (String, String) = (row.get("nonce_b64"), row.get("ciphertext_b64"));
    for (app, name, version) in [
        ("hello", "tls.key", 1),
        ("hello", "DB_PASSWORD", 2),
        ("other", "DB_PASSWORD", 1),
    ] {
        sqlx::query(
            "UPDATE secret_versions SET nonce_b64 = $1, ciphertext_b64 = $2 \
             WHERE app = $3 AND name = $4 AND version = $5",
        )
        .bind(&nonce)
        .bind(&ct)
        .bind(app)
        .bind(name)
        .bind(version)
        .execute(db.pool())
        .await
        .unwrap();
        let e = db
            .secrets()
            .get_value(app, name, version)
            .await
            .unwrap_err();
        assert!(
            matches!(
                &e,
                DbError::Secret {
                    source: lain_store::secret::SecretError::Decrypt,
                    ..
                }
            ),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&format!(
                "secret `{name}` version {version} of app `{app}` cannot be opened"
            )),
            "{msg}"
        );
        assert!(msg.contains("tampered"), "{msg}");
        assert!(!msg.contains("correct-horse"), "{msg}");
    }

    // A tampered ciphertext does not open.
    let mut tampered = ct.clone().into_bytes();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    sqlx::query(
        "UPDATE secret_versions SET ciphertext_b64 = $1 \
         WHERE app = 'hello' AND name = 'DB_PASSWORD' AND version = 1",
    )
    .bind(String::from_utf8(tampered).unwrap())
    .execute(db.pool())
    .await
    .unwrap();
    assert!(matches!(
        db.secrets().get_value("hello", "DB_PASSWORD", 1).await,
        Err(DbError::Secret {
            source: lain_store::secret::SecretError::Decrypt,
            ..
        })
    ));

    // Under another key nothing opens, and the error says which key.
    let wrong = t.reopen_with(SecretsKey::generate()).await;
    let e = wrong
        .secrets()
        .get_value("hello", "DB_PASSWORD", 3)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            DbError::Secret {
                source: lain_store::secret::SecretError::WrongKey { .. },
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("Check that console's secrets key"),
        "{e}"
    );
    // The right key still opens what was not tampered with.
    let right = t.reopen_with(t.key.clone()).await;
    assert_eq!(
        &right
            .secrets()
            .get_value("hello", "DB_PASSWORD", 3)
            .await
            .unwrap()[..],
        b"v3"
    );

    // The handle's Debug names the key, never shows it.
    let dbg = format!("{db:?}");
    assert!(dbg.contains(t.key.id()), "{dbg}");
    assert!(!dbg.contains(t.key.to_base64().as_str()), "{dbg}");
}

async fn concurrent_writes(t: TestDb) {
    let db = &t.db;
    t.app("hello", "alice").await;
    // Parallel sets of one secret get distinct, gapless versions.
    let sets = (0..8).map(|i| {
        let db = db.clone();
        tokio::spawn(async move {
            db.secrets()
                .set("hello", "K", format!("value-{i}").as_bytes(), "alice")
                .await
        })
    });
    let mut versions: Vec<i64> = futures_join(sets)
        .await
        .into_iter()
        .map(|r| r.unwrap().version)
        .collect();
    versions.sort();
    assert_eq!(versions, (1..=8).collect::<Vec<_>>());
    // Parallel audit records get distinct ids.
    let recs = (0..8).map(|i| {
        let db = db.clone();
        tokio::spawn(async move {
            db.audit()
                .record(&NewAuditEntry {
                    actor: format!("user{i}"),
                    action: "secret.set".into(),
                    app: Some("hello".into()),
                    target: Some("K".into()),
                    detail: json!({"version": i}),
                    result: AuditResult::Ok,
                    request_id: None,
                })
                .await
        })
    });
    let mut ids: Vec<i64> = futures_join(recs)
        .await
        .into_iter()
        .map(|r| r.unwrap().id)
        .collect();
    ids.sort();
    assert_eq!(ids, (1..=8).collect::<Vec<_>>());
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

async fn audit(t: TestDb) {
    let db = &t.db;
    let entry = |actor: &str, action: &str, app: Option<&str>, result| NewAuditEntry {
        actor: actor.into(),
        action: action.into(),
        app: app.map(Into::into),
        target: app.map(|a| format!("app/{a}")),
        detail: json!({"n": 1}),
        result,
        request_id: Some("req-7".into()),
    };
    let a = db
        .audit()
        .record(&entry(
            "alice",
            "app.create",
            Some("hello"),
            AuditResult::Ok,
        ))
        .await
        .unwrap();
    let b = db
        .audit()
        .record(&entry("eve", "deploy", Some("hello"), AuditResult::Denied))
        .await
        .unwrap();
    let c = db
        .audit()
        .record(&entry(
            "alice",
            "secret.set",
            Some("other"),
            AuditResult::Error,
        ))
        .await
        .unwrap();
    let d = db
        .audit()
        .record(&entry("", "cluster.status", None, AuditResult::Denied))
        .await
        .unwrap();
    assert!(a.id < b.id && b.id < c.id && c.id < d.id);
    assert_eq!(d.actor, "anonymous");

    let ids = |v: Vec<AuditEntry>| v.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let all = db.audit().list(&AuditQuery::default()).await.unwrap();
    assert_eq!(all[0], d, "newest first, stored as recorded");
    assert_eq!(all[3], a);
    assert_eq!(ids(all), [d.id, c.id, b.id, a.id]);
    let q = |app: Option<&str>, actor: Option<&str>, before, limit| AuditQuery {
        app: app.map(Into::into),
        actor: actor.map(Into::into),
        before,
        limit,
        ..Default::default()
    };
    // By action and by result, alone and with the others.
    let by = |action: Option<&str>, result: Option<AuditResult>, actor: Option<&str>| AuditQuery {
        action: action.map(Into::into),
        result,
        actor: actor.map(Into::into),
        ..Default::default()
    };
    assert_eq!(
        ids(db
            .audit()
            .list(&by(Some("deploy"), None, None))
            .await
            .unwrap()),
        [b.id]
    );
    assert_eq!(
        ids(db
            .audit()
            .list(&by(None, Some(AuditResult::Denied), None))
            .await
            .unwrap()),
        [d.id, b.id]
    );
    assert_eq!(
        ids(db
            .audit()
            .list(&by(None, Some(AuditResult::Error), Some("alice")))
            .await
            .unwrap()),
        [c.id]
    );
    assert!(db
        .audit()
        .list(&by(Some("deploy"), Some(AuditResult::Ok), None))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        ids(db
            .audit()
            .list(&q(Some("hello"), None, None, 0))
            .await
            .unwrap()),
        [b.id, a.id]
    );
    assert_eq!(
        ids(db
            .audit()
            .list(&q(None, Some("alice"), None, 0))
            .await
            .unwrap()),
        [c.id, a.id]
    );
    assert_eq!(
        ids(db
            .audit()
            .list(&q(Some("hello"), Some("alice"), None, 0))
            .await
            .unwrap()),
        [a.id]
    );
    assert_eq!(
        ids(db
            .audit()
            .list(&q(None, None, Some(c.id), 1))
            .await
            .unwrap()),
        [b.id]
    );
    assert_eq!(
        ids(db
            .audit()
            .list(&q(None, Some("alice"), Some(c.id), 0))
            .await
            .unwrap()),
        [a.id]
    );
    assert!(db
        .audit()
        .list(&q(Some("zzz"), None, None, 0))
        .await
        .unwrap()
        .is_empty());

    is_invalid(
        db.audit()
            .record(&entry("alice", "Not An Action", None, AuditResult::Ok))
            .await,
        "audit action",
        "app.create",
    );
    let big = NewAuditEntry {
        detail: json!({"x": "y".repeat(20_000)}),
        ..entry("alice", "deploy", None, AuditResult::Ok)
    };
    assert!(matches!(
        db.audit().record(&big).await,
        Err(DbError::TooLarge { .. })
    ));
    // Odd caller input is cut, never a reason to lose the entry.
    let odd = db
        .audit()
        .record(&NewAuditEntry {
            app: Some("x".repeat(5000)),
            ..entry(&"y".repeat(300), "deploy", None, AuditResult::Denied)
        })
        .await
        .unwrap();
    assert_eq!((odd.app.unwrap().len(), odd.actor.len()), (1024, 255));
}

async fn migrations(t: TestDb) {
    let db = &t.db;
    assert_eq!(db.schema_version().await.unwrap(), 2);
    t.app("hello", "alice").await;
    // Running them again, and opening again, changes nothing.
    db.migrate().await.unwrap();
    let again = Db::open(&t.url, t.key.clone()).await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), 2);
    assert_eq!(again.apps().list().await.unwrap().len(), 1);
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM console_schema_migrations")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get("n");
    assert_eq!(n, 2);
    // Several handles opening one fresh database at once apply each
    // migration once.
    if let Kind::Postgres = t.kind {
        let url = t._pg.as_ref().unwrap().create_database().unwrap();
        let opens = (0..4).map(|_| {
            let (url, key) = (url.clone(), t.key.clone());
            tokio::spawn(async move { Db::open(&url, key).await })
        });
        for db in futures_join(opens).await {
            assert_eq!(db.unwrap().schema_version().await.unwrap(), 2);
        }
    }
    // A database from a newer console is refused, with what to do.
    sqlx::query("INSERT INTO console_schema_migrations (version, applied_at) VALUES (99, 0)")
        .execute(db.pool())
        .await
        .unwrap();
    let e = Db::open(&t.url, t.key.clone()).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("schema version 99, newer than the 2"),
        "{e}"
    );
    // The SQLite file is its owner's only.
    if let Kind::Sqlite = t.kind {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(t.dir.path().join("console.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(matches!(
        Db::open("mysql://x", t.key.clone()).await,
        Err(DbError::Open(lain_db::DbError::BadUrl { .. }))
    ));
}

/// A rotation of the cluster secrets key: a handle with the new key and
/// the old one retired opens everything, re-seals the database's versions
/// and etcd's sealed values (secrets and certificate keys) under the new
/// key, after which the new key alone opens them all; a version under an
/// unknown key is reported and left alone; a second run finds nothing.
async fn key_rotation(t: TestDb) {
    use lain_store::secret::{open_for, seal_for};
    use lain_store::{
        AppSecret, CertKey, Component, SecretKey, Store, StoreOptions, TlsCertificate,
    };

    let old = t.key.clone();
    t.app("hello", "alice").await;
    for v in [b"v1".as_slice(), b"v2"] {
        t.db.secrets()
            .set("hello", "token", v, "alice")
            .await
            .unwrap();
    }
    t.db.secrets()
        .set("hello", "other", b"o1", "alice")
        .await
        .unwrap();
    // One version sealed under a key nobody has any more.
    let lost = t.reopen_with(SecretsKey::generate()).await;
    lost.secrets()
        .set("hello", "lost", b"gone", "alice")
        .await
        .unwrap();

    // etcd: what deploys write (a secret version) and an uploaded
    // certificate's key, both sealed under the old key.
    let etcd = tokio::task::spawn_blocking(lain_testkit::Etcd::start)
        .await
        .unwrap()
        .expect("etcd starts");
    let store = Store::connect_with(
        &[etcd.endpoint()],
        StoreOptions {
            writer: Some(Component::Console),
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    let sk = SecretKey::new("hello", "token", 2).unwrap();
    let secret = AppSecret {
        value: seal_for(&old, &sk, b"v2").unwrap(),
        updated_at_ms: 1,
    };
    store.put(&sk, &secret).await.unwrap();
    let ck = CertKey::new("example-com").unwrap();
    let cert = TlsCertificate {
        domains: vec!["example.com".into()],
        cert_pem: "-----BEGIN CERTIFICATE-----\n".into(),
        key: seal_for(&old, &ck, b"private key").unwrap(),
        not_after_ms: None,
    };
    store.put(&ck, &cert).await.unwrap();

    // The new key with the old one retired.
    let new = SecretsKey::generate();
    let ring = new.clone().with_retired([old.clone()]);
    let db = t.reopen_with(ring.clone()).await;
    assert_eq!(
        &db.secrets().get_value("hello", "token", 1).await.unwrap()[..],
        b"v1"
    );
    let done = console::rekey::database(&db).await.unwrap();
    assert_eq!(done.resealed, 3, "{done:?}");
    assert_eq!(done.failed.len(), 1, "{done:?}");
    assert!(done.failed[0].starts_with("hello/lost/1: "), "{done:?}");
    let done = console::rekey::etcd(&store, &ring).await.unwrap();
    assert_eq!((done.resealed, done.failed.len()), (2, 0), "{done:?}");

    // The new key alone opens everything that was re-sealed.
    let only_new = t.reopen_with(new.clone()).await;
    for (name, version, value) in [("token", 1, "v1"), ("token", 2, "v2"), ("other", 1, "o1")] {
        assert_eq!(
            &only_new
                .secrets()
                .get_value("hello", name, version)
                .await
                .unwrap()[..],
            value.as_bytes()
        );
    }
    let read = store.get(&sk).await.unwrap().unwrap().value;
    assert_eq!(read.value.key_id, new.id());
    assert_eq!(&open_for(&new, &sk, &read.value).unwrap()[..], b"v2");
    let read = store.get(&ck).await.unwrap().unwrap().value;
    assert_eq!(&open_for(&new, &ck, &read.key).unwrap()[..], b"private key");
    assert_eq!(read.cert_pem, cert.cert_pem, "only the key is re-sealed");

    // Again: nothing left to do but the lost version, still reported.
    let done = console::rekey::database(&db).await.unwrap();
    assert_eq!((done.resealed, done.failed.len()), (0, 1));
    let done = console::rekey::etcd(&store, &ring).await.unwrap();
    assert_eq!((done.resealed, done.failed.len()), (0, 0));
}

/// The web console's sessions: created, read, touched; a refresh is
/// claimed by exactly one of many concurrent callers and the tokens are
/// swapped once; a subject keeps at most `MAX_SESSIONS_PER_SUBJECT` sessions;
/// expired ones go at the next login; delete ends one.
async fn web_sessions(t: TestDb) {
    use console::db::{WebSession, MAX_SESSIONS_PER_SUBJECT};
    let db = &t.db;
    let session = |id: &str, subject: &str, created: i64, expires: i64| WebSession {
        id_hash: id.into(),
        subject: subject.into(),
        username: subject.into(),
        groups_json: "[]".into(),
        tokens_sealed: "{}".into(),
        access_exp: created + 600,
        token_version: 0,
        refreshing_until: 0,
        created_at: created,
        last_seen_at: created,
        expires_at: expires,
    };
    let s = session("h1", "alice", 1000, 9000);
    db.web_sessions().create(&s, 1000).await.unwrap();
    assert_eq!(db.web_sessions().get("h1").await.unwrap(), Some(s.clone()));
    assert_eq!(db.web_sessions().get("nope").await.unwrap(), None);
    db.web_sessions().touch("h1", 1500).await.unwrap();
    assert_eq!(
        db.web_sessions()
            .get("h1")
            .await
            .unwrap()
            .unwrap()
            .last_seen_at,
        1500
    );

    // Eight requests race to refresh: one wins.
    let claims = (0..8).map(|_| {
        let db = db.clone();
        tokio::spawn(async move { db.web_sessions().claim_refresh("h1", 0, 1600, 1615).await })
    });
    let won = futures_join(claims)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1);
    // The claim holds until it lapses or the tokens are swapped.
    assert!(!db
        .web_sessions()
        .claim_refresh("h1", 0, 1610, 1625)
        .await
        .unwrap());
    assert!(db
        .web_sessions()
        .swap_tokens("h1", 0, "{\"v\":1}", 2200)
        .await
        .unwrap());
    assert!(
        !db.web_sessions()
            .swap_tokens("h1", 0, "{\"v\":2}", 2300)
            .await
            .unwrap(),
        "a stale version loses"
    );
    let now = db.web_sessions().get("h1").await.unwrap().unwrap();
    assert_eq!(
        (now.token_version, now.refreshing_until, now.access_exp),
        (1, 0, 2200)
    );
    assert_eq!(now.tokens_sealed, "{\"v\":1}");
    assert!(!db
        .web_sessions()
        .claim_refresh("h1", 0, 1700, 1715)
        .await
        .unwrap());
    assert!(db
        .web_sessions()
        .claim_refresh("h1", 1, 1700, 1715)
        .await
        .unwrap());
    // A lapsed claim can be taken again.
    assert!(db
        .web_sessions()
        .claim_refresh("h1", 1, 1716, 1731)
        .await
        .unwrap());

    // Bounded per subject: the oldest go; an expired session of anyone
    // goes at the next login.
    db.web_sessions()
        .create(&session("bob-old", "bob", 1000, 1200), 1000)
        .await
        .unwrap();
    for i in 0..MAX_SESSIONS_PER_SUBJECT + 3 {
        db.web_sessions()
            .create(
                &session(&format!("a{i:03}"), "alice", 2000 + i, 9000),
                2000 + i,
            )
            .await
            .unwrap();
    }
    assert_eq!(
        db.web_sessions().count_of("alice").await.unwrap(),
        MAX_SESSIONS_PER_SUBJECT
    );
    assert_eq!(
        db.web_sessions().get("h1").await.unwrap(),
        None,
        "the oldest went first"
    );
    assert_eq!(db.web_sessions().get("a000").await.unwrap(), None);
    // Exactly the newest MAX_SESSIONS_PER_SUBJECT are kept.
    assert_eq!(db.web_sessions().get("a002").await.unwrap(), None);
    assert!(db.web_sessions().get("a003").await.unwrap().is_some());
    assert!(db
        .web_sessions()
        .get(&format!("a{:03}", MAX_SESSIONS_PER_SUBJECT + 2))
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        db.web_sessions().count_of("bob").await.unwrap(),
        0,
        "expired"
    );

    assert!(db.web_sessions().delete("a010").await.unwrap());
    assert!(!db.web_sessions().delete("a010").await.unwrap());
}

/// Runs each scenario on SQLite and on PostgreSQL.
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::TestDb::start(super::Kind::Sqlite).await).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::TestDb::start(super::Kind::Postgres).await).await
            })*
        }
    };
}

both!(
    apps,
    maintainers,
    releases,
    deployments,
    secrets,
    concurrent_writes,
    audit,
    migrations,
    key_rotation,
    web_sessions
);

/// Compiles only if every repository future can run in a spawned task (as
/// in an axum handler): sqlx futures that hold a borrowed temporary across
/// an await are not `Send` for every lifetime, and then this fails to build.
#[allow(dead_code)]
fn repository_futures_are_spawnable(db: Db, key: SecretsKey) {
    macro_rules! spawn {
        ($db:ident => $e:expr) => {{
            let $db = $db.clone();
            drop(tokio::spawn(async move { $e.await.map(|_| ()) }));
        }};
    }
    drop(tokio::spawn(async move {
        Db::open("sqlite::memory:", key).await.map(|_| ())
    }));
    spawn!(db => db.migrate());
    spawn!(db => db.schema_version());
    spawn!(db => db.apps().create(&NewApp { name: "a".into(), apptype: AppType::App, giturl: None, created_by: "x".into() }));
    spawn!(db => db.apps().get("a"));
    spawn!(db => db.apps().list());
    spawn!(db => db.apps().list_maintained_by("x"));
    spawn!(db => db.apps().delete("a"));
    spawn!(db => db.maintainers().add("a", "x", Role::Owner, "x"));
    spawn!(db => db.maintainers().remove("a", "x"));
    spawn!(db => db.maintainers().list("a"));
    spawn!(db => db.maintainers().role("a", "x"));
    spawn!(db => db.maintainers().is_maintainer("a", "x"));
    spawn!(db => db.releases().register(&new_release("a", 1, SHA1, 'a')));
    spawn!(db => db.releases().get("a", "v"));
    spawn!(db => db.releases().list("a", 0));
    spawn!(db => db.releases().latest("a"));
    spawn!(db => db.deployments().create(&NewDeployment {
        app: "a".into(),
        kind: DeploymentKind::Deploy,
        from_release: None,
        to_release: None,
        procs: ProcSelection::All,
        requested_by: "x".into(),
        generation: None,
        snapshot: DeploymentSnapshot::default(),
    }));
    spawn!(db => db.deployments().update(1, &DeploymentUpdate { state: DeploymentState::Failed, error: None, generation: None }));
    spawn!(db => db.deployments().get(1));
    spawn!(db => db.deployments().list("a", &DeploymentQuery::default()));
    spawn!(db => db.secrets().set("a", "n", b"v", "x"));
    spawn!(db => db.secrets().list("a"));
    spawn!(db => db.secrets().get_value("a", "n", 1));
    spawn!(db => db.secrets().get_current("a", "n"));
    spawn!(db => db.secrets().remove("a", "n", "x"));
    spawn!(db => db.audit().record(&NewAuditEntry { actor: "x".into(), action: "a".into(), app: None, target: None, detail: json!({}), result: AuditResult::Ok, request_id: None }));
    spawn!(db => db.audit().list(&AuditQuery::default()));
}
