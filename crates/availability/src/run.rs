//! One run: read the cluster and the queue, compute, write, record.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use gpudev_cluster::capacity::node_capacities;
use gpudev_cluster::ops::{self, OpsError};
use gpudev_domain::{CatalogError, GpuCatalog, GpuSpec, GpuType};
use gpudev_store::cronjob_runs::{self, Outcome};
use gpudev_store::gpu_types::{self, Availability, GpuTypeRow};
use gpudev_store::{Pool, StoreError, availability as queue_counts};
use k8s_openapi::api::core::v1::Node;
use serde::Serialize;

use crate::Config;
use crate::compute::{self, TypeShape};

/// The job name in `cronjob_runs`.
pub const JOB: &str = "availability";

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] StoreError),
    /// The Kubernetes API failed.
    #[error("kubernetes: {0}")]
    Kube(#[from] OpsError),
    /// The GPU type rows do not form a catalog.
    #[error("gpu_types rows: {0}")]
    Catalog(#[from] CatalogError),
}

/// What a run wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The run's id in `cronjob_runs`.
    pub run_id: i64,
    /// Figures written, per GPU type.
    pub types: BTreeMap<String, Availability>,
    /// Nodes carrying the GPU type label.
    pub nodes: usize,
    /// Unfinished pods seen (any namespace).
    pub pods: usize,
    /// Labelled nodes whose type is not an active GPU type (ignored).
    pub nodes_of_unknown_types: usize,
    /// How long the run took.
    #[serde(skip)]
    pub elapsed: Duration,
}

impl Report {
    /// The summary stored with the run and logged.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "types_written": self.types.len(),
            "nodes": self.nodes,
            "pods": self.pods,
            "nodes_of_unknown_types": self.nodes_of_unknown_types,
            "elapsed_ms": u64::try_from(self.elapsed.as_millis()).unwrap_or(u64::MAX),
            "availability": self.types,
        })
    }
}

/// Runs once: records the run's start, computes every active GPU type's availability from the
/// cluster and the queue, writes all rows in one transaction, and records the outcome. Running
/// it again with nothing changed writes the same figures. Every statement is bounded (see
/// [`gpudev_store::connect`]), so against a database that stops answering a run fails after
/// about two bounds (the statement that met it, then the attempt to record the failure), with
/// the first failure as its error.
#[tracing::instrument(skip_all, fields(job = JOB))]
pub async fn run_once(pool: &Pool, kube: &kube::Client, cfg: &Config) -> Result<Report, RunError> {
    let started = Instant::now();
    let run_id = {
        let db = pool.get().await.map_err(StoreError::from)?;
        cronjob_runs::start(&**db, JOB, &cfg.writer).await?
    };
    let result = compute_and_write(pool, kube, cfg, run_id, started).await;
    let recorded = async {
        let db = pool.get().await?;
        match &result {
            Ok(report) => {
                cronjob_runs::finish(&**db, run_id, Outcome::Success, &report.summary(), None).await
            }
            Err(e) => {
                let message = e.to_string();
                let summary = serde_json::json!({ "error": message });
                cronjob_runs::finish(&**db, run_id, Outcome::Failure, &summary, Some(&message))
                    .await
            }
        }
    };
    match (recorded.await, result) {
        (Ok(_), result) => result,
        // Why the run failed says more than why its record failed too (a database that stopped
        // answering fails both).
        (Err(record), Err(e)) => {
            tracing::warn!(run_id, error = %record, "the failed run could not be recorded");
            Err(e)
        }
        (Err(record), Ok(_)) => Err(record.into()),
    }
}

async fn compute_and_write(
    pool: &Pool,
    kube: &kube::Client,
    cfg: &Config,
    run_id: i64,
    started: Instant,
) -> Result<Report, RunError> {
    // The cluster and the database are read at the same time.
    let cluster = ops::nodes_and_pods(kube);
    let database = async {
        let db = pool.get().await.map_err(StoreError::from)?;
        let rows = gpu_types::list_active(&**db).await?;
        let queued = queue_counts::queued_by_type(&**db).await?;
        Ok::<_, StoreError>((rows, queued))
    };
    let (cluster, database) = tokio::join!(cluster, database);
    let (nodes, pods) = cluster?;
    let (rows, queued) = database?;

    let labelled: Vec<Node> = nodes
        .into_iter()
        .filter(|n| {
            n.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(&cfg.gpu_type_label))
        })
        .collect();
    let ready: HashSet<String> = labelled
        .iter()
        .filter(|n| is_ready(n))
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    let mut types = BTreeMap::new();
    let mut nodes_of_unknown_types = labelled.len();
    if !rows.is_empty() {
        let catalog = catalog_of(&rows)?;
        let capacities = node_capacities(&labelled, &pods, &cfg.gpu_type_label, &catalog);
        for row in &rows {
            let shape = TypeShape {
                gpus_per_node: u32::try_from(row.gpus_per_node).unwrap_or(0),
                multinode: row.multinode,
            };
            let mine: Vec<_> = capacities
                .iter()
                .filter(|c| c.gpu_type.as_str() == row.gpu_type)
                .collect();
            nodes_of_unknown_types -= mine.len();
            let figures = compute::availability(
                shape,
                mine,
                &ready,
                queued.get(&row.gpu_type).copied().unwrap_or_default(),
                cfg.max_nodes,
            );
            types.insert(row.gpu_type.clone(), figures);
        }
        let rows: Vec<(String, Availability)> =
            types.iter().map(|(t, a)| (t.clone(), *a)).collect();
        let mut db = pool.get().await.map_err(StoreError::from)?;
        queue_counts::write_all(&mut db, &rows, &cfg.writer).await?;
    }
    if nodes_of_unknown_types > 0 {
        tracing::warn!(
            nodes = nodes_of_unknown_types,
            label = %cfg.gpu_type_label,
            "nodes carry a GPU type that is not an active gpu_types row; they are not counted"
        );
    }
    Ok(Report {
        run_id,
        types,
        nodes: labelled.len(),
        pods: pods.len(),
        nodes_of_unknown_types,
        elapsed: started.elapsed(),
    })
}

/// The catalog the capacity computation needs (which types are CPU-only), from the rows.
fn catalog_of(rows: &[GpuTypeRow]) -> Result<GpuCatalog, CatalogError> {
    let specs = rows
        .iter()
        .filter_map(|r| {
            let name = GpuType::parse(&r.gpu_type).ok()?;
            Some(GpuSpec {
                name,
                gpus_per_node: u32::try_from(r.gpus_per_node).unwrap_or(0),
                instance_type: r.instance_type.clone(),
                cpus_per_node: u32::try_from(r.cpus_per_node).unwrap_or(1).max(1),
                memory_gib_per_node: u32::try_from(r.memory_gib_per_node).unwrap_or(1).max(1),
                multinode: r.multinode && r.gpus_per_node > 0,
                aliases: Vec::new(),
            })
        })
        .collect();
    GpuCatalog::from_specs(specs)
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
