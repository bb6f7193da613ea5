//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations, and the
//! Swagger UI (assets vendored into the binary, so `/docs/` works without internet).

use std::sync::LazyLock;

use actix_web::{HttpResponse, web};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ErrorBody;
use crate::routes;

/// Adds the bearer scheme every authenticated route refers to as `bearer`.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key from a login or `POST /v1/keys/rotate`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "agent_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A dev box agent's token, from its reservation's Secret (ADR 18)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds the error answers that come from the layers every request of a kind passes through, so
/// that each handler documents only its own: the key check and the rate limiter (every route with
/// the bearer scheme), the JSON body extractor (every route with a body), and the path, query and
/// header parsers (every route with such parameters). A handler's own description of a status
/// wins; this only fills in the ones it left out.
struct CommonResponses;

impl CommonResponses {
    const AUTHENTICATED: &[(&str, &str)] = &[
        (
            "401",
            "no `Authorization` header, not `Bearer <key>`, or not a key this server issued",
        ),
        (
            "403",
            "the key expired or was revoked, the user is disabled, or the route needs an admin",
        ),
        (
            "429",
            "the key's rate limit is exhausted (see `Retry-After`)",
        ),
        ("503", "the database cannot be reached (see `Retry-After`)"),
    ];
    const WITH_BODY: &[(&str, &str)] = &[
        ("400", "malformed JSON or an unreadable body"),
        ("413", "the body is larger than 64 KiB"),
        ("415", "the body is not JSON"),
        ("422", "a field is invalid; `detail` names it"),
    ];
    const WITH_PARAMETERS: &[(&str, &str)] = &[(
        "422",
        "a path, query or header parameter is invalid; `detail` names it",
    )];

    fn error(description: &str) -> RefOr<Response> {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
            .into()
    }

    fn complete(op: &mut Operation) {
        let mut add: Vec<(&str, &str)> = Vec::new();
        let authenticated = op
            .security
            .iter()
            .flatten()
            .filter_map(|req| serde_json::to_value(req).ok())
            .any(|req| req.get("bearer").is_some());
        if authenticated {
            add.extend(Self::AUTHENTICATED);
        }
        if op.request_body.is_some() {
            add.extend(Self::WITH_BODY);
        }
        let parsed_parameters = op.parameters.iter().flatten().any(|p| {
            matches!(
                p.parameter_in,
                ParameterIn::Path | ParameterIn::Query | ParameterIn::Header
            )
        });
        if parsed_parameters {
            add.extend(Self::WITH_PARAMETERS);
        }
        for (status, description) in add {
            op.responses
                .responses
                .entry(status.to_owned())
                .or_insert_with(|| Self::error(description));
        }
    }
}

impl Modify for CommonResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                Self::complete(op);
            }
        }
    }
}

/// An optional request body (`Option<T>` in a handler's annotation) is either absent or a `T`:
/// utoipa also allows JSON `null` there, which the server refuses, so the null alternative is
/// taken out.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let null = serde_json::json!({"type": "null"});
        for item in doc.paths.paths.values_mut() {
            for op in Links::operations(item) {
                let Some(body) = op.request_body.as_mut() else {
                    continue;
                };
                if matches!(body.required, Some(utoipa::openapi::Required::True)) {
                    continue;
                }
                for content in body.content.values_mut() {
                    let Some(RefOr::T(Schema::OneOf(one))) = content.schema.as_mut() else {
                        continue;
                    };
                    one.items
                        .retain(|s| serde_json::to_value(s).ok().as_ref() != Some(&null));
                    if let [only] = one.items.as_slice() {
                        content.schema = Some(only.clone());
                    }
                }
            }
        }
    }
}

/// Adds OpenAPI links from the answers that create or list a resource to the operations that take
/// its identifier, so clients and generators (schemathesis' stateful tests) can follow them:
/// a submitted job to every `/v1/jobs/{job_id}` action, a created disk to its routes, a listed
/// user to the admin's user actions, a rotated key to its revocation.
struct Links;

/// An answer that supplies identifiers, and the operations that take them.
struct LinkSource {
    /// Method of the operation that answers (lower case).
    method: &'static str,
    /// Its path.
    path: &'static str,
    /// The answer's status.
    status: &'static str,
    /// Prefix of the paths whose operations take the identifiers.
    targets: &'static str,
    /// Each path parameter and where its value is in the answer.
    params: &'static [(&'static str, &'static str)],
}

impl Links {
    const FROM: &[LinkSource] = &[
        LinkSource {
            method: "post",
            path: "/v1/jobs/submit",
            status: "200",
            targets: "/v1/jobs/{job_id}",
            params: &[("job_id", "$response.body#/job_id")],
        },
        LinkSource {
            method: "post",
            path: "/v1/jobs/submit",
            status: "200",
            targets: "/v1/admin/jobs/{job_id}",
            params: &[("job_id", "$response.body#/job_id")],
        },
        LinkSource {
            method: "post",
            path: "/v1/disks",
            status: "200",
            targets: "/v1/disks/{disk_name}",
            params: &[
                ("disk_name", "$response.body#/disk_name"),
                ("operation_id", "$response.body#/operation_id"),
            ],
        },
        LinkSource {
            method: "get",
            path: "/v1/admin/users",
            status: "200",
            targets: "/v1/admin/users/{id}",
            params: &[("id", "$response.body#/users/0/username")],
        },
        LinkSource {
            method: "post",
            path: "/v1/keys/rotate",
            status: "200",
            targets: "/v1/keys/{key_id}",
            params: &[("key_id", "$response.body#/key_id")],
        },
    ];

    fn operations(item: &mut utoipa::openapi::PathItem) -> Vec<&mut Operation> {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

impl Modify for Links {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for LinkSource {
            method,
            path: source,
            status,
            targets: prefix,
            params,
        } in Self::FROM
        {
            // Every operation under `prefix` whose path parameters the answer supplies.
            let mut targets: Vec<(String, Vec<(&str, &str)>)> = Vec::new();
            for (path, item) in doc.paths.paths.iter_mut() {
                if !path.starts_with(prefix) {
                    continue;
                }
                for op in Self::operations(item) {
                    let path_params: Vec<&str> = op
                        .parameters
                        .iter()
                        .flatten()
                        .filter(|p| matches!(p.parameter_in, ParameterIn::Path))
                        .map(|p| p.name.as_str())
                        .collect();
                    let supplied: Option<Vec<(&str, &str)>> = path_params
                        .iter()
                        .map(|name| params.iter().find(|(p, _)| p == name).copied())
                        .collect();
                    if let (Some(id), Some(supplied)) = (&op.operation_id, supplied) {
                        targets.push((id.clone(), supplied));
                    }
                }
            }
            let Some(item) = doc.paths.paths.get_mut(*source) else {
                continue;
            };
            let op = match *method {
                "get" => item.get.as_mut(),
                "post" => item.post.as_mut(),
                _ => None,
            };
            let Some(RefOr::T(response)) =
                op.and_then(|op| op.responses.responses.get_mut(*status))
            else {
                continue;
            };
            for (operation_id, supplied) in targets {
                // utoipa 5.5 writes `Link::operation_id` as `operation_id`, which OpenAPI does
                // not know; the field is set through the (flattened) extensions as `operationId`.
                let spelled: Extensions = [("operationId", operation_id.clone())]
                    .into_iter()
                    .collect();
                let mut link = LinkBuilder::new().extensions(Some(spelled));
                for (name, expression) in supplied {
                    link = link.parameter(name, expression);
                }
                response.links.insert(operation_id, link.build().into());
            }
        }
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "gpudev API",
        description = "Reserve GPU development servers on Kubernetes. Errors are `{\"detail\", \"code\"}`.",
    ),
    paths(
        routes::health::root,
        routes::health::health,
        routes::health::livez,
        routes::health::readyz,
        routes::auth::aws_login::aws_login,
        routes::auth::aws_iam::aws_iam,
        routes::auth::oidc_login::oidc_login,
        routes::auth::oidc_issuers::oidc_issuers,
        routes::auth::aws_iam::aws_login_info,
        routes::keys::rotate::rotate_key,
        routes::keys::list::list_own_keys,
        routes::keys::delete::delete_key,
        routes::me::get::get_me,
        routes::me::ssh_keys::put_ssh_keys,
        routes::me::ssh_keys::get_ssh_keys,
        routes::jobs::submit::submit_job,
        routes::jobs::list::list_jobs,
        routes::jobs::get::get_job,
        routes::jobs::cancel::cancel_job,
        routes::jobs::extend::extend_job,
        routes::jobs::jupyter::enable_jupyter,
        routes::jobs::jupyter::disable_jupyter,
        routes::jobs::add_user::add_user,
        routes::jobs::keep_alive::keep_alive,
        routes::agent::report,
        routes::cluster::availability::gpu_availability,
        routes::cluster::status::cluster_status,
        routes::disks::create::create_disk,
        routes::disks::list::list_disks,
        routes::disks::get::get_disk,
        routes::disks::content::disk_content,
        routes::console_link::create_link,
        routes::disks::delete::delete_disk,
        routes::disks::rename::rename_disk,
        routes::disks::operation::get_operation,
        routes::admin::users::list_users,
        routes::admin::users::disable_user,
        routes::admin::users::enable_user,
        routes::admin::keys::list_keys,
        routes::admin::keys::revoke_key,
        routes::admin::jobs::list_all_jobs,
        routes::admin::jobs::cancel_any_job,
        routes::admin::usage::usage_report,
        routes::admin::audit::audit_log,
    ),
    components(schemas(ErrorBody, gpudev_domain::status::StatusList)),
    modifiers(&BearerScheme, &CommonResponses, &OptionalBodies, &Links),
    tags(
        (name = "service", description = "Service information and health"),
        (name = "auth", description = "Logins that issue API keys"),
        (name = "jobs", description = "Reservations"),
        (name = "disks", description = "Persistent home disks"),
        (name = "keys", description = "The caller's API keys"),
        (name = "me", description = "The caller"),
        (name = "cluster", description = "GPU availability"),
        (name = "console", description = "Signing in to the web console"),
        (name = "agent", description = "Reports of the agent in each dev box"),
        (name = "admin", description = "Operators only"),
    )
)]
pub struct ApiDoc;

/// Each documented path, split into segments (`None` for a `{parameter}`), and its methods.
type Routes = Vec<(Vec<Option<String>>, Vec<&'static str>)>;

static ROUTES: LazyLock<Routes> = LazyLock::new(|| {
    ApiDoc::openapi()
        .paths
        .paths
        .iter()
        .map(|(path, item)| {
            let segments = path
                .split('/')
                .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                .collect();
            let methods = [
                ("GET", item.get.is_some()),
                ("PUT", item.put.is_some()),
                ("POST", item.post.is_some()),
                ("DELETE", item.delete.is_some()),
                ("PATCH", item.patch.is_some()),
                ("HEAD", item.head.is_some()),
                ("OPTIONS", item.options.is_some()),
                ("TRACE", item.trace.is_some()),
            ]
            .into_iter()
            .filter_map(|(method, present)| present.then_some(method))
            .collect();
            (segments, methods)
        })
        .collect()
});

/// The methods the document lists for the path a request names (a `{parameter}` matches any
/// non-empty segment, as the router's does), or `None` when it documents no such path. The
/// fallback service answers 405 with these as `Allow`, so the answer to an undeclared method
/// comes from the same list clients read.
pub fn documented_methods(path: &str) -> Option<&'static [&'static str]> {
    let asked: Vec<&str> = path.split('/').collect();
    // `/v1/keys/rotate` also fits `/v1/keys/{key_id}`: the path with the most literal segments
    // is the one meant.
    ROUTES
        .iter()
        .filter(|(segments, _)| {
            segments.len() == asked.len()
                && segments.iter().zip(&asked).all(|(want, got)| match want {
                    Some(literal) => literal == got,
                    None => !got.is_empty(),
                })
        })
        .max_by_key(|(segments, _)| segments.iter().flatten().count())
        .map(|(_, methods)| methods.as_slice())
}

/// The document as served at `/openapi.json`, serialized once per process: each HTTP worker would
/// otherwise hold its own copy of the document's tree (megabytes once allocated) and serialize
/// it anew for every request. A document that cannot be serialized (a bug) is answered with 500.
static DOCUMENT: LazyLock<Result<web::Bytes, String>> = LazyLock::new(|| {
    serde_json::to_vec(&ApiDoc::openapi())
        .map(web::Bytes::from)
        .map_err(|e| e.to_string())
});

async fn document() -> Result<HttpResponse, crate::error::ApiError> {
    let body = DOCUMENT.as_ref().map_err(|e| {
        crate::error::ApiError::internal(anyhow::anyhow!("the OpenAPI document: {e}"))
    })?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body.clone()))
}

/// Registers `/openapi.json`, `/docs/` and a redirect from `/docs`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(document))
        .service(
            SwaggerUi::new("/docs/{_:.*}").config(utoipa_swagger_ui::Config::from("/openapi.json")),
        )
        .route(
            "/docs",
            web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header(("location", "/docs/"))
                    .finish()
            }),
        );
}
