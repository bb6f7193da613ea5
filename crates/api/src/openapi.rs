//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations, and the
//! Swagger UI (assets vendored into the binary, so `/docs/` works without internet).

use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
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
        routes::cluster::availability::gpu_availability,
        routes::cluster::status::cluster_status,
        routes::disks::create::create_disk,
        routes::disks::list::list_disks,
        routes::disks::get::get_disk,
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
    components(schemas(ErrorBody)),
    modifiers(&BearerScheme),
    tags(
        (name = "service", description = "Service information and health"),
        (name = "auth", description = "Logins that issue API keys"),
        (name = "jobs", description = "Reservations"),
        (name = "disks", description = "Persistent home disks"),
        (name = "keys", description = "The caller's API keys"),
        (name = "me", description = "The caller"),
        (name = "cluster", description = "GPU availability"),
        (name = "admin", description = "Operators only"),
    )
)]
pub struct ApiDoc;

/// Registers `/openapi.json`, `/docs/` and a redirect from `/docs`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", ApiDoc::openapi()))
        .route(
            "/docs",
            web::get().to(|| async {
                HttpResponse::PermanentRedirect()
                    .insert_header(("location", "/docs/"))
                    .finish()
            }),
        );
}
