//! The Services of a dev box: a NodePort Service per Pod for SSH (and Jupyter), and for
//! multi-node reservations one headless Service through which the Pods find each other.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::labels;
use crate::plan::PodPlan;
use crate::pod::{JUPYTER_PORT, RENDEZVOUS_PORT, SSH_PORT};

fn port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port: number,
        target_port: Some(IntOrString::Int(number)),
        protocol: Some("TCP".to_owned()),
        ..Default::default()
    }
}

/// The NodePort Service that exposes one Pod's sshd (port `ssh`) and, when enabled, Jupyter
/// (port `jupyter`), named [`PodPlan::ssh_service_name`].
///
/// Kubernetes allocates the node ports (the processor reads them back from the created
/// Service), so two reservations never race for one. `externalTrafficPolicy: Local` keeps the
/// client's address for sshd's logs and means the port answers on the Pod's own node, the
/// address the processor reports.
pub fn ssh_service(plan: &PodPlan) -> Service {
    let mut ports = vec![port("ssh", SSH_PORT)];
    if plan.spec().jupyter.is_some() {
        ports.push(port("jupyter", JUPYTER_PORT));
    }
    Service {
        metadata: ObjectMeta {
            name: Some(plan.ssh_service_name()),
            namespace: Some(plan.namespace().to_owned()),
            labels: Some(plan.pod_labels()),
            annotations: Some(plan.annotations()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("NodePort".to_owned()),
            selector: Some(plan.pod_selector()),
            ports: Some(ports),
            external_traffic_policy: Some("Local".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The headless Service of a multi-node reservation (`None` for a single node), named
/// [`PodPlan::headless_service_name`]. Every Pod of the reservation builds the same object.
///
/// It selects all the reservation's Pods and publishes them before they are Ready, because the
/// nodes must resolve each other while they start (DNS `<pod>.<service>.<namespace>.svc`).
pub fn headless_service(plan: &PodPlan) -> Option<Service> {
    if !plan.is_multinode() {
        return None;
    }
    let reservation_id = plan.reservation_id().hyphenated().to_string();
    Some(Service {
        metadata: ObjectMeta {
            name: Some(plan.headless_service_name()),
            namespace: Some(plan.namespace().to_owned()),
            labels: Some(plan.reservation_labels()),
            annotations: Some(plan.annotations()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(
                [(labels::RESERVATION_ID.to_owned(), reservation_id)]
                    .into_iter()
                    .collect(),
            ),
            publish_not_ready_addresses: Some(true),
            ports: Some(vec![port("rendezvous", RENDEZVOUS_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::JupyterToken;
    use crate::plan::tests::spec;
    use std::collections::BTreeMap;

    fn ports(service: &Service) -> Vec<(String, i32)> {
        service
            .spec
            .as_ref()
            .unwrap()
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| (p.name.clone().unwrap(), p.port))
            .collect()
    }

    #[test]
    fn the_ssh_service_is_a_nodeport_on_this_pod_only() {
        let plan = PodPlan::new(&spec("h100", 16, 2), 1).unwrap();
        let service = ssh_service(&plan);
        assert_eq!(
            service.metadata.name.as_deref(),
            Some("gpudev-3f2a9c1e7b4d-1-ssh")
        );
        let spec = service.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
        assert_eq!(
            spec.selector,
            Some(BTreeMap::from([
                ("gpudev.io/node-index".into(), "1".into()),
                (
                    "gpudev.io/reservation-id".into(),
                    "3f2a9c1e-7b4d-4e8f-9a0b-1c2d3e4f5a6b".into()
                ),
            ]))
        );
        assert_eq!(ports(&service), [("ssh".into(), 22)]);
        assert!(spec.ports.as_ref().unwrap()[0].node_port.is_none());
        let labels = service.metadata.labels.unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "gpudev");
        assert_eq!(labels["gpudev.io/user"], "alice");
    }

    #[test]
    fn jupyter_adds_a_port_to_the_ssh_service() {
        let mut s = spec("t4", 1, 1);
        s.jupyter = Some(JupyterToken::parse("tok-0123456789abcdefXYZ").unwrap());
        let service = ssh_service(&PodPlan::new(&s, 0).unwrap());
        assert_eq!(
            ports(&service),
            [("ssh".into(), 22), ("jupyter".into(), 8888)]
        );
    }

    #[test]
    fn only_multinode_reservations_get_the_headless_service() {
        assert!(headless_service(&PodPlan::new(&spec("h100", 8, 1), 0).unwrap()).is_none());
        let plans = spec("h100", 16, 2).pod_plans().unwrap();
        let from_0 = headless_service(&plans[0]).unwrap();
        let from_1 = headless_service(&plans[1]).unwrap();
        assert_eq!(from_0, from_1, "every node builds the same object");
        assert_eq!(
            from_0.metadata.name.as_deref(),
            Some("gpudev-3f2a9c1e7b4d-nodes")
        );
        let spec = from_0.spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(
            spec.selector,
            Some(BTreeMap::from([(
                "gpudev.io/reservation-id".into(),
                "3f2a9c1e-7b4d-4e8f-9a0b-1c2d3e4f5a6b".into()
            )]))
        );
        assert_eq!(ports(&from_0), [("rendezvous".into(), 29500)]);
        let labels = from_0.metadata.labels.unwrap();
        assert!(!labels.contains_key("gpudev.io/node-index"));
        assert_eq!(
            labels["gpudev.io/reservation-id"],
            "3f2a9c1e-7b4d-4e8f-9a0b-1c2d3e4f5a6b"
        );
    }
}
