//! `use_services`: from the services a client names to the portals it
//! gets, checked against what the service apps deployed.
//!
//! Pure: the client, the (app, service) pairs it uses and the service
//! apps' desired procs go in; the [`ServiceUse`]s written on the client's
//! procs (or every reason the deploy must be refused) come out. Console
//! refuses at deploy; deployd checks `allow_clients` again at run time, so
//! a service that later drops a client takes its route away.

use std::collections::BTreeMap;

use lain_store::{DesiredProc, ServiceUse};

/// Why a client cannot use a service. Each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error("use_services names app {app}, which is not registered; register and deploy it, or remove it from use_services")]
    NotRegistered { app: String },
    #[error("use_services names app {app}, which is not deployed; deploy {app} first")]
    NotDeployed { app: String },
    #[error("app {app} has no portal for service {service}{offered}; use one of its services or add a portal for {service} to {app}'s lain.yaml")]
    NoSuchService {
        app: String,
        service: String,
        /// `" (it offers: a, b)"` or empty.
        offered: String,
    },
    #[error("app {app} does not let {client} use its service {service} (allow_clients: {allowed}); ask a maintainer of {app} to add {client} to the portal's allow_clients")]
    NotAllowed {
        client: String,
        app: String,
        service: String,
        allowed: String,
    },
}

/// One service app as console sees it: `None` when it is not registered,
/// else its desired procs in etcd (empty when it is not deployed).
pub type ServiceApps = BTreeMap<String, Option<Vec<DesiredProc>>>;

/// The portals `client` gets for `wanted` (service app, service name)
/// pairs, in order. The names a portal answers to are
/// `{service}.{app}.lain` always, and the bare service name (as LAIN
/// had it) when no other service of the client has the same name.
pub fn resolve(
    client: &str,
    wanted: &[(String, String)],
    apps: &ServiceApps,
) -> Result<Vec<ServiceUse>, Vec<ServiceError>> {
    let mut uses = Vec::new();
    let mut errors = Vec::new();
    for (app, service) in wanted {
        let procs = match apps.get(app) {
            None | Some(None) => {
                errors.push(ServiceError::NotRegistered { app: app.clone() });
                continue;
            }
            Some(Some(p)) if p.is_empty() => {
                errors.push(ServiceError::NotDeployed { app: app.clone() });
                continue;
            }
            Some(Some(p)) => p,
        };
        let portals: Vec<(&DesiredProc, &lain_store::PortalSpec)> = procs
            .iter()
            .filter_map(|d| d.portal.as_ref().map(|s| (d, s)))
            .collect();
        let Some((d, spec)) = portals.iter().find(|(_, s)| &s.service == service) else {
            let names: Vec<&str> = portals.iter().map(|(_, s)| s.service.as_str()).collect();
            errors.push(ServiceError::NoSuchService {
                app: app.clone(),
                service: service.clone(),
                offered: if names.is_empty() {
                    String::new()
                } else {
                    format!(" (it offers: {})", names.join(", "))
                },
            });
            continue;
        };
        if !spec.allows(client) {
            errors.push(ServiceError::NotAllowed {
                client: client.to_owned(),
                app: app.clone(),
                service: service.clone(),
                allowed: spec.allow_clients.join(", "),
            });
            continue;
        }
        uses.push(ServiceUse {
            app: app.clone(),
            portal: d.proc.clone(),
            service: service.clone(),
            aliases: vec![format!("{service}.{app}.lain")],
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let bare: Vec<String> = uses.iter().map(|u| u.service.clone()).collect();
    for u in &mut uses {
        if bare.iter().filter(|s| **s == u.service).count() == 1 {
            u.aliases.push(u.service.clone());
        }
    }
    Ok(uses)
}

/// The (app, service) pairs of a client's `use_services`, and of the
/// services of its `use_resources` (served by its own instance of each
/// resource, `resource.RES.CLIENT`).
pub fn wanted(conf: &lain_spec::LainConf) -> Vec<(String, String)> {
    let services = conf
        .use_services
        .iter()
        .flat_map(|(app, names)| names.iter().map(move |n| (app.clone(), n.clone())));
    let resources = conf.use_resources.iter().flat_map(|(res, u)| {
        let instance = lain_spec::instance_name(res, &conf.appname);
        u.services
            .iter()
            .map(move |n| (instance.clone(), n.clone()))
    });
    services.chain(resources).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lain_store::{PortalSpec, ProcType};

    fn portal(app: &str, service: &str, allow: &[&str]) -> DesiredProc {
        DesiredProc {
            app: app.into(),
            proc: format!("portal.portal-{service}"),
            proc_type: ProcType::Portal,
            release: "1-a".into(),
            image: "reg/x:release-1-a".into(),
            instances: 0,
            cmd: vec![],
            entrypoint: vec![],
            user: None,
            workdir: None,
            cpu_millis: 0,
            memory_bytes: 32 << 20,
            env: Default::default(),
            secrets: vec![],
            port: Some(9000),
            healthcheck: None,
            mountpoints: vec![],
            https_only: false,
            volumes: vec![],
            labels: Default::default(),
            kill_timeout_secs: 10,
            setup_time_secs: 0,
            stateful: false,
            filters: vec![],
            services: vec![],
            backups: vec![],
            restore: None,
            portal: Some(PortalSpec {
                service: service.into(),
                service_proc: format!("worker.{service}"),
                allow_clients: allow.iter().map(|s| s.to_string()).collect(),
            }),
            generation: 1,
        }
    }

    fn pair(app: &str, service: &str) -> (String, String) {
        (app.into(), service.into())
    }

    #[test]
    fn allowed_services_resolve_with_their_names() {
        let apps = ServiceApps::from([
            ("svc".into(), Some(vec![portal("svc", "echo", &["**"])])),
            ("db".into(), Some(vec![portal("db", "echo", &["client"])])),
            ("kv".into(), Some(vec![portal("kv", "redis", &["cli*"])])),
        ]);
        let uses = resolve(
            "client",
            &[pair("svc", "echo"), pair("db", "echo"), pair("kv", "redis")],
            &apps,
        )
        .unwrap();
        assert_eq!(uses.len(), 3);
        assert_eq!(uses[0].portal, "portal.portal-echo");
        // Two services named echo: only the qualified names.
        assert_eq!(uses[0].aliases, ["echo.svc.lain"]);
        assert_eq!(uses[1].aliases, ["echo.db.lain"]);
        assert_eq!(uses[2].aliases, ["redis.kv.lain", "redis"]);
    }

    #[test]
    fn every_problem_is_reported_with_what_to_do() {
        let apps = ServiceApps::from([
            ("svc".into(), Some(vec![portal("svc", "echo", &["friend"])])),
            ("idle".into(), Some(vec![])),
            ("gone".into(), None),
        ]);
        let errs = resolve(
            "client",
            &[
                pair("svc", "echo"),
                pair("svc", "nope"),
                pair("idle", "x"),
                pair("gone", "x"),
                pair("unknown", "x"),
            ],
            &apps,
        )
        .unwrap_err();
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 5, "{text:?}");
        assert!(
            text[0].contains("does not let client use its service echo (allow_clients: friend)")
        );
        assert!(text[1].contains("no portal for service nope (it offers: echo)"));
        assert!(text[2].contains("idle, which is not deployed"));
        assert!(text[3].contains("gone, which is not registered"));
        assert!(text[4].contains("unknown, which is not registered"));
    }
}
