//! `GET /v1/gpu/availability` and `GET /v1/cluster/status`: capacity per GPU type, from the rows
//! the availability CronJob writes and the live reservations.

use std::collections::BTreeMap;

use actix_web::web;
use gpudev_domain::{GpuCatalog, ReservationStatus};
use gpudev_store::gpu_types::GpuTypeRow;
use gpudev_store::reservations::LiveReservation;

pub use gpudev_api_types::cluster::GpuAvailability;

pub mod availability;
pub mod status;

/// Registers the capacity routes (inside the authenticated scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(availability::gpu_availability)
        .service(status::cluster_status);
}

/// Reservations by status, over every GPU type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Active reservations.
    pub active: i64,
    /// Preparing reservations.
    pub preparing: i64,
    /// Queued reservations.
    pub queued: i64,
}

/// Combines the catalog (which types exist), the availability rows (what the nodes offer) and the
/// live reservations (what is held and wanted) into one entry per type, keyed and sorted by name.
///
/// `in_use` and `queued` come from the reservations, as in the original. `available` is what the
/// availability job saw free, capped by its total less what reservations hold (the job runs every
/// few minutes; reservations admitted since then are already counted). The estimated wait of each
/// type is the scheduler's own ([`crate::queue_state::estimated_waits`]), given in `waits`.
pub fn summarise(
    catalog: &GpuCatalog,
    rows: &[GpuTypeRow],
    live: &[LiveReservation],
    waits: &BTreeMap<String, i64>,
) -> (BTreeMap<String, GpuAvailability>, Counts) {
    let mut counts = Counts::default();
    for r in live {
        match r.status {
            ReservationStatus::Active => counts.active += 1,
            ReservationStatus::Preparing => counts.preparing += 1,
            ReservationStatus::Queued => counts.queued += 1,
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for spec in catalog {
        let name = spec.name.as_str();
        let row = rows.iter().find(|r| r.gpu_type == name);
        let of_type = || live.iter().filter(|r| r.gpu_type == name);
        let in_use: i64 = of_type()
            .filter(|r| r.status != ReservationStatus::Queued)
            .map(|r| i64::from(r.gpu_count))
            .sum();
        let queued: i64 = of_type()
            .filter(|r| r.status == ReservationStatus::Queued)
            .map(|r| i64::from(r.gpu_count))
            .sum();
        let queued_reservations = of_type()
            .filter(|r| r.status == ReservationStatus::Queued)
            .count() as i64;
        let total = row.map_or(0, |r| i64::from(r.total_gpus));
        let reported_free = row.map_or(0, |r| i64::from(r.available_gpus));
        let available = reported_free.min(total - in_use).max(0);
        let per_node = i64::from(spec.gpus_per_node);
        let full_nodes = if per_node > 0 {
            row.map_or(0, |r| i64::from(r.full_nodes_available))
                .min(available / per_node)
        } else {
            0
        };
        let estimated_wait_minutes = waits.get(name).copied();
        out.insert(
            name.to_owned(),
            GpuAvailability {
                gpu_type: name.to_owned(),
                total,
                available,
                in_use,
                queued,
                max_per_node: per_node,
                full_nodes_available: full_nodes,
                max_reservable: row
                    .map_or(0, |r| i64::from(r.max_reservable))
                    .min(available),
                running_instances: row.map_or(0, |r| i64::from(r.running_nodes)),
                multinode: spec.multinode,
                queued_reservations,
                estimated_wait_minutes,
                last_updated: row.and_then(|r| r.last_availability_update),
            },
        );
    }
    (out, counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};
    use uuid::Uuid;

    fn row(name: &str, total: i32, free: i32, full: i32) -> GpuTypeRow {
        GpuTypeRow {
            gpu_type: name.into(),
            instance_type: "x".into(),
            gpus_per_node: 8,
            cpus_per_node: 1,
            memory_gib_per_node: 1,
            multinode: true,
            is_active: true,
            total_gpus: total,
            available_gpus: free,
            in_use_gpus: total - free,
            queued_gpus: 0,
            full_nodes_available: full,
            max_reservable: free,
            running_nodes: total / 8,
            last_availability_update: Some(Utc::now()),
            last_availability_updated_by: Some("test".into()),
        }
    }

    fn live(
        gpu_type: &str,
        status: ReservationStatus,
        gpus: i32,
        ends_in_h: i64,
    ) -> LiveReservation {
        LiveReservation {
            reservation_id: Uuid::new_v4(),
            gpu_type: gpu_type.into(),
            status,
            gpu_count: gpus,
            priority: 0,
            created_at: Utc::now(),
            ends_at: (status != ReservationStatus::Queued)
                .then(|| Utc::now() + Duration::hours(ends_in_h)),
        }
    }

    #[test]
    fn reservations_give_in_use_and_queued_and_cap_what_is_free() {
        use ReservationStatus::{Active, Preparing, Queued};
        let waits = BTreeMap::from([("h100".to_owned(), 120)]);
        let (by_type, counts) = summarise(
            &GpuCatalog::default(),
            &[row("h100", 16, 12, 1)],
            &[
                live("h100", Active, 8, 2),
                live("h100", Preparing, 4, 1),
                live("h100", Queued, 8, 0),
                live("t4", Queued, 1, 0),
            ],
            &waits,
        );
        let h = &by_type["h100"];
        assert_eq!((h.total, h.in_use, h.queued), (16, 12, 8));
        assert_eq!(
            h.available, 4,
            "the job saw 12 free, reservations since hold 12 of 16"
        );
        assert_eq!(h.full_nodes_available, 0);
        assert_eq!(h.max_reservable, 4);
        assert_eq!(h.max_per_node, 8);
        assert_eq!(h.queued_reservations, 1);
        assert_eq!(
            h.estimated_wait_minutes,
            Some(120),
            "the scheduler's figure"
        );
        let t4 = &by_type["t4"];
        assert_eq!((t4.total, t4.available, t4.queued), (0, 0, 1));
        assert_eq!(t4.estimated_wait_minutes, None, "no figure for t4");
        assert_eq!(
            counts,
            Counts {
                active: 1,
                preparing: 1,
                queued: 2
            }
        );
        assert_eq!(
            by_type.keys().next().map(String::as_str),
            Some("a100"),
            "sorted by name"
        );
    }
}
