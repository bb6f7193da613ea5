//! The OpenAPI document is valid OpenAPI, lists every route the code registers, and every route it
//! lists is served. The Swagger UI works offline.

use std::path::{Path, PathBuf};

use gpudev_store::users::Role;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::spawn_app;

/// `path` with the patterns of its segments removed (`{key_id:\\d+}` → `{key_id}`), as the
/// OpenAPI document writes it.
fn without_patterns(path: &str) -> String {
    path.split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.split_once(':')) {
                Some((name, _)) => format!("{{{name}}}"),
                None => seg.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// Every `#[get("…")]`-style route attribute under `src/routes`, as a full path.
fn routes_in_source() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
    let mut files = Vec::new();
    collect(&root, &mut files);
    let mut routes = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let prefix = if rel.starts_with("health") {
            ""
        } else if rel.starts_with("auth/") {
            "/v1/auth"
        } else if rel.starts_with("agent") {
            "/v1/agent"
        } else {
            "/v1"
        };
        for line in text.lines() {
            let line = line.trim();
            for method in ["get", "post", "put", "delete", "patch"] {
                let open = format!("#[{method}(\"");
                if let Some(rest) = line.strip_prefix(&open) {
                    let path = rest.split('"').next().unwrap();
                    routes.push((
                        method.to_owned(),
                        format!("{prefix}{}", without_patterns(path)),
                    ));
                }
            }
        }
    }
    routes.sort();
    routes
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

async fn document(app: &crate::helpers::TestApp) -> Value {
    app.http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_route_in_the_code_is_in_the_openapi_document() {
    let app = spawn_app().await;
    let doc = document(&app).await;

    let source = routes_in_source();

    assert!(source.len() >= 15, "found only {source:?}");
    for (method, path) in &source {
        assert!(
            doc["paths"][path][method].is_object(),
            "{} {path} is registered but missing from /openapi.json",
            method.to_uppercase()
        );
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|ops| ops.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        source.len(),
        "the document lists routes the code does not serve"
    );
}

#[tokio::test]
async fn authenticated_routes_declare_the_bearer_scheme_and_errors_use_the_error_body() {
    let app = spawn_app().await;
    let doc = document(&app).await;

    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    for (path, ops) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") || path.starts_with("/v1/auth/") {
            continue;
        }
        if path.starts_with("/v1/agent/") {
            // A dev box's agent token, never an API key.
            for (method, op) in ops.as_object().unwrap() {
                assert!(
                    op["security"][0]["agent_token"].is_array() && op["security"][1].is_null(),
                    "{method} {path} does not declare the agent token scheme alone"
                );
            }
            continue;
        }
        for (method, op) in ops.as_object().unwrap() {
            assert!(
                op["security"][0]["bearer"].is_array(),
                "{method} {path} does not declare the bearer scheme"
            );
        }
    }
}

#[tokio::test]
async fn the_document_is_valid_openapi() {
    let app = spawn_app().await;
    let text = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dir = tempfile_dir();
    let file = dir.join("openapi.json");
    std::fs::write(&file, text).unwrap();
    let validator =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/openapi-spec-validator");
    assert!(validator.exists(), "run scripts/install-python-tools first");

    let out = std::process::Command::new(validator)
        .arg(&file)
        .output()
        .unwrap();

    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gpudev-openapi-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let app = spawn_app().await;
    let (_, admin) = app.user_with_key("root", Role::Admin).await;
    let doc = document(&app).await;

    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            // Each path parameter a value of its documented type.
            let integer = |name: &str| {
                op["parameters"].as_array().into_iter().flatten().any(|p| {
                    p["name"] == name && p["in"] == "path" && p["schema"]["type"] == "integer"
                })
            };
            let concrete = path
                .split('/')
                .map(
                    |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) if integer(name) => "0",
                        Some(_) => "00000000-0000-0000-0000-000000000000",
                        None => seg,
                    },
                )
                .collect::<Vec<_>>()
                .join("/");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = app.call(m, &concrete, Some(&admin), None).await;
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            assert!(
                !(status == 404 && body.contains("no such endpoint")),
                "{method} {path} is documented but not served"
            );
            assert!(status < 500, "{method} {concrete}: {status} {body}");
        }
    }
}

#[tokio::test]
async fn the_swagger_ui_is_served_from_the_binary() {
    let app = spawn_app().await;

    let redirect = app
        .http
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .unwrap();
    let page = app
        .http
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .unwrap();

    assert_eq!(redirect.status().as_u16(), 308);
    assert_eq!(redirect.headers()["location"], "/docs/");
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("swagger"));
    // The page loads the document this server serves.
    let initializer = app
        .http
        .get(format!("{}/docs/swagger-initializer.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(initializer.status().as_u16(), 200);
    assert!(
        initializer
            .text()
            .await
            .unwrap()
            .contains(r#""url": "/openapi.json""#)
    );
    let document = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(document.headers()["content-type"], "application/json");
    let document: Value = document.json().await.unwrap();
    assert!(document["paths"]["/v1/jobs/submit"]["post"].is_object());
}

/// schemathesis found answers the document did not list: 401 and 403 from the key check, 415 and
/// 400 from the JSON extractor, 422 from path parameters. Every operation now lists the errors of
/// the layers it passes through, each with the error body.
#[tokio::test]
async fn every_operation_documents_the_errors_of_the_layers_it_passes_through() {
    let app = spawn_app().await;
    let doc = document(&app).await;

    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let mut expected: Vec<&str> = Vec::new();
            if op["security"][0]["bearer"].is_array() {
                expected.extend(["401", "403", "429", "503"]);
            }
            if op["requestBody"].is_object() {
                expected.extend(["400", "413", "415", "422"]);
            }
            if op["parameters"].as_array().is_some_and(|p| !p.is_empty()) {
                expected.push("422");
            }
            for status in expected {
                let response = &op["responses"][status];
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} does not document {status} with the error body"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} answers checked");
    // A handler's own description is kept: the login's 401 is about STS, not API keys.
    assert_eq!(
        doc["paths"]["/v1/auth/aws-login"]["post"]["responses"]["401"]["description"],
        "STS refused the credentials"
    );
    assert!(
        doc["paths"]["/health"]["get"]["responses"]["401"].is_null(),
        "a public route does not answer 401"
    );
}

/// The answers that create or list a resource link to the operations that take its identifier,
/// and every link names an operation of the document with all of its path parameters.
#[tokio::test]
async fn creating_answers_link_to_the_operations_on_what_they_created() {
    let app = spawn_app().await;
    let doc = document(&app).await;

    let mut operations = std::collections::HashMap::new();
    for ops in doc["paths"].as_object().unwrap().values() {
        for op in ops.as_object().unwrap().values() {
            if let Some(id) = op["operationId"].as_str() {
                operations.insert(id.to_owned(), op.clone());
            }
        }
    }
    let links = |method: &str, path: &str| -> serde_json::Map<String, Value> {
        doc["paths"][path][method]["responses"]["200"]["links"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    };

    let from_submit = links("post", "/v1/jobs/submit");
    for target in [
        "get_job",
        "cancel_job",
        "extend_job",
        "add_user",
        "cancel_any_job",
    ] {
        assert_eq!(
            from_submit[target]["parameters"]["job_id"], "$response.body#/job_id",
            "{target}"
        );
    }
    assert!(links("post", "/v1/disks").contains_key("get_operation"));
    assert!(links("get", "/v1/admin/users").contains_key("disable_user"));
    assert!(links("post", "/v1/keys/rotate").contains_key("delete_key"));
    for (method, path) in [
        ("post", "/v1/jobs/submit"),
        ("post", "/v1/disks"),
        ("get", "/v1/admin/users"),
        ("post", "/v1/keys/rotate"),
    ] {
        for (name, link) in links(method, path) {
            let target = &operations[link["operationId"].as_str().unwrap()];
            let path_params: Vec<&str> = target["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            for param in path_params {
                assert!(
                    link["parameters"][param].is_string(),
                    "{method} {path} → {name} lacks {param}"
                );
            }
        }
    }
}

/// The fixed limits of the inputs are in the schemas, so generated requests probe both sides of
/// them, and they agree with the rules the server applies.
#[tokio::test]
async fn the_schemas_carry_the_fixed_limits_of_the_inputs() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];

    let priority = &schemas["JobSubmission"]["properties"]["priority"];
    assert_eq!(
        (priority["minimum"].as_i64(), priority["maximum"].as_i64()),
        (
            Some(i64::from(*gpudev_domain::request::PRIORITY_RANGE.start())),
            Some(i64::from(*gpudev_domain::request::PRIORITY_RANGE.end()))
        )
    );
    let size = &schemas["CreateDisk"]["properties"]["size_gb"];
    assert_eq!(
        (size["minimum"].as_i64(), size["maximum"].as_i64()),
        (Some(10), Some(10_000))
    );
    assert_eq!(
        schemas["RenameDisk"]["properties"]["new_name"]["$ref"],
        "#/components/schemas/DiskName"
    );
    assert_eq!(
        schemas["DiskName"]["pattern"],
        gpudev_domain::DiskName::PATTERN
    );
    let params = doc["paths"]["/v1/jobs"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!(limit["schema"]["maximum"].as_i64(), Some(500));
}
