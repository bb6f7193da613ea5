-- The original system's `t4-small` (one T4 on a g4dn.2xlarge) joins the built-in GPU catalog as a
-- type of its own, so the availability job counts its nodes. The rows seeded here mirror
-- `GpuCatalog::default()`; a store test keeps the two equal.
INSERT INTO gpu_types (gpu_type, instance_type, gpus_per_node, cpus_per_node, memory_gib_per_node, multinode, description)
VALUES ('t4-small', 'g4dn.2xlarge', 1, 8, 32, false, 'NVIDIA T4, one per node')
ON CONFLICT (gpu_type) DO NOTHING;
