//! The GPU catalog: which GPU types can be reserved and what one node of each looks like.
//!
//! The built-in [`GpuCatalog::default`] matches the EC2 instance types we run on; operators can
//! replace it with a JSON list of [`GpuSpec`]s ([`GpuCatalog::from_json`]).
//!
//! A spec may carry aliases: other names that ask for the same type. The built-in catalog uses
//! them for the original system's `cpu-small` and `cpu-large`, which named no node group of their
//! own (their instance type was a placeholder) and so are served by `cpu-x86`. The original's
//! `t4-small` was a node type of its own (one T4 on a `g4dn.2xlarge`) and is a type here too.

use std::fmt;

/// Longest GPU type name.
pub const MAX_GPU_TYPE_LEN: usize = 32;

/// The name of a GPU type (`h100`, `cpu-arm`): lower-case letters, digits and `-`, 1 to 32
/// characters, starting and ending with a letter or digit (so it is also a valid label value).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct GpuType(String);

/// Why a string is not a valid GPU type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuTypeError {
    /// The name was empty.
    #[error("GPU type must not be empty")]
    Empty,
    /// The name was longer than [`MAX_GPU_TYPE_LEN`].
    #[error("GPU type must be at most {MAX_GPU_TYPE_LEN} characters")]
    TooLong,
    /// The name contained something other than `[a-z0-9-]`.
    #[error("GPU type may contain only lower-case letters, digits and '-' (found {0:?})")]
    InvalidCharacter(char),
    /// The name started or ended with `-`.
    #[error("GPU type must start and end with a letter or digit")]
    EdgeHyphen,
}

impl GpuType {
    /// Parses a GPU type name exactly as given (no case folding; see [`GpuCatalog::lookup`] for
    /// the forgiving form).
    pub fn parse(raw: &str) -> Result<Self, GpuTypeError> {
        if raw.is_empty() {
            return Err(GpuTypeError::Empty);
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(GpuTypeError::InvalidCharacter(bad));
        }
        if raw.len() > MAX_GPU_TYPE_LEN {
            return Err(GpuTypeError::TooLong);
        }
        if raw.starts_with('-') || raw.ends_with('-') {
            return Err(GpuTypeError::EdgeHyphen);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for GpuType {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GpuType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for GpuType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// One reservable machine type: a node of `instance_type` with `gpus_per_node` GPUs.
///
/// `gpus_per_node == 0` marks a CPU-only type.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSpec {
    /// The name users ask for.
    pub name: GpuType,
    /// GPUs on one node (0 for CPU-only types).
    pub gpus_per_node: u32,
    /// The EC2 instance type of the nodes (matched against the node label
    /// `node.kubernetes.io/instance-type`).
    pub instance_type: String,
    /// vCPUs on one node.
    pub cpus_per_node: u32,
    /// Memory on one node, in GiB.
    pub memory_gib_per_node: u32,
    /// Whether a reservation may span several whole nodes.
    pub multinode: bool,
    /// Other names that ask for this type (matched like the name, ignoring case); a reservation
    /// made under an alias is stored under the type's name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<GpuType>,
}

impl GpuSpec {
    /// True for types without GPUs.
    pub fn is_cpu_only(&self) -> bool {
        self.gpus_per_node == 0
    }
}

/// Why a list of specs cannot form a catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// No GPU types at all.
    #[error("GPU catalog must list at least one GPU type")]
    Empty,
    /// Two specs share a name, or an alias repeats a name or another alias.
    #[error("GPU catalog lists GPU type {0} more than once (as a name or an alias)")]
    DuplicateType(GpuType),
    /// Two specs share an instance type, so nodes could not be attributed to one type.
    #[error("GPU catalog lists instance type {0:?} for more than one GPU type")]
    DuplicateInstanceType(String),
    /// A spec has an empty instance type.
    #[error("GPU type {0} must name an instance type")]
    MissingInstanceType(GpuType),
    /// A spec has no CPUs or no memory.
    #[error("GPU type {0} must have at least one vCPU and 1 GiB of memory per node")]
    EmptyNode(GpuType),
    /// A CPU-only spec is marked multinode.
    #[error("CPU-only type {0} cannot be multinode")]
    CpuMultinode(GpuType),
    /// The JSON could not be read as a list of specs.
    #[error("GPU catalog JSON is invalid: {0}")]
    Json(String),
}

/// A GPU type name that is not in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown GPU type {given:?}: the nearest valid {} {} (known types: {})",
    if nearest.len() == 1 { "name is" } else { "names are" }, nearest.join(", "), known.join(", "))]
pub struct UnknownGpuType {
    /// What was asked for.
    pub given: String,
    /// The valid names (types or aliases) closest to `given`, closest first, at most
    /// [`MAX_NEAREST`].
    pub nearest: Vec<String>,
    /// Every type name in the catalog, in catalog order (aliases are not listed).
    pub known: Vec<String>,
}

/// Most names [`UnknownGpuType::nearest`] offers.
pub const MAX_NEAREST: usize = 3;

/// The set of reservable GPU types, in display order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct GpuCatalog {
    specs: Vec<GpuSpec>,
}

impl GpuCatalog {
    /// Builds a catalog, refusing an empty list, duplicate names or instance types, CPU-only
    /// multinode types and nodes without CPUs or memory.
    pub fn from_specs(specs: Vec<GpuSpec>) -> Result<Self, CatalogError> {
        if specs.is_empty() {
            return Err(CatalogError::Empty);
        }
        let mut seen = std::collections::HashSet::new();
        for spec in &specs {
            for name in std::iter::once(&spec.name).chain(&spec.aliases) {
                if !seen.insert(name) {
                    return Err(CatalogError::DuplicateType(name.clone()));
                }
            }
        }
        for (i, spec) in specs.iter().enumerate() {
            let earlier = &specs[..i];
            if spec.instance_type.trim().is_empty() {
                return Err(CatalogError::MissingInstanceType(spec.name.clone()));
            }
            if earlier
                .iter()
                .any(|s| s.instance_type == spec.instance_type)
            {
                return Err(CatalogError::DuplicateInstanceType(
                    spec.instance_type.clone(),
                ));
            }
            if spec.cpus_per_node == 0 || spec.memory_gib_per_node == 0 {
                return Err(CatalogError::EmptyNode(spec.name.clone()));
            }
            if spec.is_cpu_only() && spec.multinode {
                return Err(CatalogError::CpuMultinode(spec.name.clone()));
            }
        }
        Ok(Self { specs })
    }

    /// Reads a catalog from a JSON array of specs, for example
    /// `[{"name":"h100","gpus_per_node":8,"instance_type":"p5.48xlarge","cpus_per_node":192,
    /// "memory_gib_per_node":2048,"multinode":true}]`.
    pub fn from_json(json: &str) -> Result<Self, CatalogError> {
        let specs: Vec<GpuSpec> =
            serde_json::from_str(json).map_err(|e| CatalogError::Json(e.to_string()))?;
        Self::from_specs(specs)
    }

    /// The spec of a parsed GPU type, if the catalog has it.
    pub fn get(&self, name: &GpuType) -> Option<&GpuSpec> {
        self.specs.iter().find(|s| &s.name == name)
    }

    /// Finds a GPU type by name or alias, ignoring ASCII case (`H100` finds `h100`, `cpu-small`
    /// finds `cpu-x86`). An unknown name fails with the nearest valid names.
    pub fn lookup(&self, name: &str) -> Result<&GpuSpec, UnknownGpuType> {
        self.specs
            .iter()
            .find(|s| {
                std::iter::once(&s.name)
                    .chain(&s.aliases)
                    .any(|n| n.as_str().eq_ignore_ascii_case(name))
            })
            .ok_or_else(|| UnknownGpuType {
                given: name.to_owned(),
                nearest: self.nearest(name),
                known: self.names().map(str::to_owned).collect(),
            })
    }

    /// The valid names (types first, then aliases, in catalog order) closest to `given`: those
    /// at the smallest edit distance, where a name that `given` starts with (`h100-80gb`) or
    /// that starts with `given` (`cpu`) counts as at most two edits away. At most
    /// [`MAX_NEAREST`].
    fn nearest(&self, given: &str) -> Vec<String> {
        let given = given.to_ascii_lowercase();
        let candidates = self
            .specs
            .iter()
            .map(|s| &s.name)
            .chain(self.specs.iter().flat_map(|s| &s.aliases))
            .map(|n| {
                let n = n.as_str();
                let prefix = given.len() >= 2 && (n.starts_with(&given) || given.starts_with(n));
                let distance = edit_distance(&given, n);
                (if prefix { distance.min(2) } else { distance }, n)
            })
            .collect::<Vec<_>>();
        let best = candidates.iter().map(|(d, _)| *d).min().unwrap_or(0);
        candidates
            .into_iter()
            .filter(|(d, _)| *d == best)
            .map(|(_, n)| n.to_owned())
            .take(MAX_NEAREST)
            .collect()
    }

    /// The spec whose nodes have this EC2 instance type.
    pub fn by_instance_type(&self, instance_type: &str) -> Option<&GpuSpec> {
        self.specs.iter().find(|s| s.instance_type == instance_type)
    }

    /// Every spec, in catalog order.
    pub fn iter(&self) -> std::slice::Iter<'_, GpuSpec> {
        self.specs.iter()
    }

    /// Every GPU type name, in catalog order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.specs.iter().map(|s| s.name.as_str())
    }

    /// Number of GPU types (never zero).
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// Always false: a catalog has at least one type. Present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }
}

/// Levenshtein distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

impl<'a> IntoIterator for &'a GpuCatalog {
    type Item = &'a GpuSpec;
    type IntoIter = std::slice::Iter<'a, GpuSpec>;

    fn into_iter(self) -> Self::IntoIter {
        self.specs.iter()
    }
}

/// One row of the built-in catalog: (name, GPUs/node, instance type, vCPUs, GiB, multinode,
/// aliases).
type DefaultSpec = (
    &'static str,
    u32,
    &'static str,
    u32,
    u32,
    bool,
    &'static [&'static str],
);

/// The built-in catalog. `t4-small` and the aliases are the original system's names (see the
/// module documentation).
const DEFAULT_SPECS: [DefaultSpec; 10] = [
    ("t4", 4, "g4dn.12xlarge", 48, 192, false, &[]),
    ("t4-small", 1, "g4dn.2xlarge", 8, 32, false, &[]),
    ("l4", 4, "g6.12xlarge", 48, 192, false, &[]),
    ("a10g", 4, "g5.12xlarge", 48, 192, false, &[]),
    ("a100", 8, "p4d.24xlarge", 96, 1152, true, &[]),
    ("h100", 8, "p5.48xlarge", 192, 2048, true, &[]),
    ("h200", 8, "p5e.48xlarge", 192, 2048, true, &[]),
    ("b200", 8, "p6-b200.48xlarge", 192, 2048, true, &[]),
    (
        "cpu-x86",
        0,
        "c7i.8xlarge",
        32,
        64,
        false,
        &["cpu-small", "cpu-large"],
    ),
    ("cpu-arm", 0, "c7g.8xlarge", 32, 64, false, &[]),
];

impl Default for GpuCatalog {
    /// The built-in catalog of the EC2 types gpudev runs on.
    fn default() -> Self {
        // The names in the table are constants that a test runs through `GpuType::parse`.
        let specs = DEFAULT_SPECS
            .iter()
            .map(
                |&(name, gpus, instance, cpus, mem, multinode, aliases)| GpuSpec {
                    name: GpuType(name.to_owned()),
                    gpus_per_node: gpus,
                    instance_type: instance.to_owned(),
                    cpus_per_node: cpus,
                    memory_gib_per_node: mem,
                    multinode,
                    aliases: aliases.iter().map(|a| GpuType((*a).to_owned())).collect(),
                },
            )
            .collect();
        Self { specs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, gpus: u32, instance: &str, multinode: bool) -> GpuSpec {
        GpuSpec {
            name: GpuType::parse(name).unwrap(),
            gpus_per_node: gpus,
            instance_type: instance.to_owned(),
            cpus_per_node: 8,
            memory_gib_per_node: 32,
            multinode,
            aliases: Vec::new(),
        }
    }

    #[test]
    fn gpu_type_names_follow_the_rules() {
        for ok in ["t4", "cpu-x86", "p6-b200", "a", &"x".repeat(32)] {
            assert_eq!(GpuType::parse(ok).map(|t| t.0), Ok(ok.to_owned()));
        }
        assert_eq!(GpuType::parse(""), Err(GpuTypeError::Empty));
        assert_eq!(GpuType::parse(&"x".repeat(33)), Err(GpuTypeError::TooLong));
        assert_eq!(
            GpuType::parse("H100"),
            Err(GpuTypeError::InvalidCharacter('H'))
        );
        assert_eq!(
            GpuType::parse("cpu_x86"),
            Err(GpuTypeError::InvalidCharacter('_'))
        );
        assert_eq!(GpuType::parse("-h100"), Err(GpuTypeError::EdgeHyphen));
        assert_eq!(GpuType::parse("h100-"), Err(GpuTypeError::EdgeHyphen));
    }

    #[test]
    fn default_catalog_holds_exactly_the_ten_documented_types() {
        let catalog = GpuCatalog::default();
        /// A spec as a tuple: DEFAULT_SPECS' columns, the aliases owned.
        type Row<'a> = (&'a str, u32, &'a str, u32, u32, bool, Vec<&'a str>);
        let rows: Vec<Row<'_>> = catalog
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.gpus_per_node,
                    s.instance_type.as_str(),
                    s.cpus_per_node,
                    s.memory_gib_per_node,
                    s.multinode,
                    s.aliases.iter().map(GpuType::as_str).collect(),
                )
            })
            .collect();
        let expected: Vec<_> = DEFAULT_SPECS
            .iter()
            .map(|&(n, g, i, c, m, mn, a)| (n, g, i, c, m, mn, a.to_vec()))
            .collect();
        assert_eq!(rows, expected);
        assert_eq!(catalog.len(), 10);
        for spec in &catalog {
            for name in std::iter::once(&spec.name).chain(&spec.aliases) {
                assert_eq!(
                    GpuType::parse(name.as_str()).as_ref(),
                    Ok(name),
                    "a valid name"
                );
            }
        }
        // The default catalog obeys the same rules as a configured one.
        assert_eq!(GpuCatalog::from_specs(catalog.specs.clone()), Ok(catalog));
    }

    #[test]
    fn lookup_ignores_case_and_unknown_types_list_the_known_ones() {
        let catalog = GpuCatalog::default();
        assert_eq!(
            catalog.lookup("H100").map(|s| s.instance_type.as_str()),
            Ok("p5.48xlarge")
        );
        assert_eq!(catalog.lookup("cpu-ARM").map(|s| s.gpus_per_node), Ok(0));
        let err = catalog.lookup("v100").unwrap_err();
        assert_eq!(err.given, "v100");
        assert_eq!(
            err.to_string(),
            "unknown GPU type \"v100\": the nearest valid names are a100, h100 (known types: \
             t4, t4-small, l4, a10g, a100, h100, h200, b200, cpu-x86, cpu-arm)"
        );
    }

    #[test]
    fn the_original_systems_names_are_served() {
        let catalog = GpuCatalog::default();
        let t4_small = catalog.lookup("t4-small").unwrap();
        assert_eq!(
            (
                t4_small.name.as_str(),
                t4_small.gpus_per_node,
                t4_small.instance_type.as_str()
            ),
            ("t4-small", 1, "g4dn.2xlarge")
        );
        for alias in ["cpu-small", "cpu-large", "CPU-Large"] {
            let spec = catalog.lookup(alias).unwrap();
            assert_eq!(spec.name.as_str(), "cpu-x86", "{alias}");
            assert!(spec.is_cpu_only());
        }
        // An alias is a way to ask, not a type: `get` knows only stored names.
        assert_eq!(catalog.get(&GpuType::parse("cpu-small").unwrap()), None);
        assert!(!catalog.names().any(|n| n == "cpu-small"));
    }

    #[test]
    fn an_unknown_type_names_the_nearest_valid_names() {
        let catalog = GpuCatalog::default();
        let nearest = |given: &str| catalog.lookup(given).unwrap_err().nearest;
        assert_eq!(nearest("h10"), ["h100"]);
        assert_eq!(
            nearest("H100-80GB"),
            ["h100"],
            "a known name it starts with"
        );
        assert_eq!(nearest("t4-smal"), ["t4-small"]);
        assert_eq!(
            nearest("cpu-smal"),
            ["cpu-small"],
            "an alias is a valid name"
        );
        assert_eq!(nearest("a10"), ["a10g", "a100"], "ties in catalog order");
        assert_eq!(
            nearest("cpu"),
            ["cpu-x86", "cpu-arm", "cpu-small"],
            "types first, at most three"
        );
        let far = nearest("zzzzzzzzzz");
        assert!(!far.is_empty() && far.len() <= MAX_NEAREST, "{far:?}");
        let one = catalog.lookup("A10G-24GB").unwrap_err().to_string();
        assert!(one.contains("the nearest valid name is a10g ("), "{one}");
    }

    #[test]
    fn an_alias_may_not_repeat_a_name_or_another_alias() {
        let mut t4 = spec("t4", 4, "a.x", false);
        t4.aliases = vec![GpuType::parse("l4").unwrap()];
        assert_eq!(
            GpuCatalog::from_specs(vec![t4.clone(), spec("l4", 4, "b.x", false)]),
            Err(CatalogError::DuplicateType(GpuType::parse("l4").unwrap()))
        );
        t4.aliases = vec![GpuType::parse("small").unwrap()];
        let mut l4 = spec("l4", 4, "b.x", false);
        l4.aliases = vec![GpuType::parse("small").unwrap()];
        assert_eq!(
            GpuCatalog::from_specs(vec![t4, l4]),
            Err(CatalogError::DuplicateType(
                GpuType::parse("small").unwrap()
            ))
        );
    }

    #[test]
    fn get_and_by_instance_type_find_the_right_spec() {
        let catalog = GpuCatalog::default();
        let b200 = GpuType::parse("b200").unwrap();
        assert_eq!(catalog.get(&b200).map(|s| s.gpus_per_node), Some(8));
        assert_eq!(catalog.get(&GpuType::parse("v100").unwrap()), None);
        assert_eq!(
            catalog
                .by_instance_type("c7g.8xlarge")
                .map(|s| s.name.as_str()),
            Some("cpu-arm")
        );
        assert_eq!(catalog.by_instance_type("m5.large"), None);
    }

    #[test]
    fn from_specs_refuses_empty_and_duplicate_lists() {
        assert_eq!(GpuCatalog::from_specs(vec![]), Err(CatalogError::Empty));
        let dup = vec![spec("t4", 4, "a.x", false), spec("t4", 4, "b.x", false)];
        assert_eq!(
            GpuCatalog::from_specs(dup),
            Err(CatalogError::DuplicateType(GpuType::parse("t4").unwrap()))
        );
        let dup_instance = vec![spec("t4", 4, "a.x", false), spec("l4", 4, "a.x", false)];
        assert_eq!(
            GpuCatalog::from_specs(dup_instance),
            Err(CatalogError::DuplicateInstanceType("a.x".into()))
        );
    }

    #[test]
    fn from_specs_refuses_inconsistent_specs() {
        assert!(matches!(
            GpuCatalog::from_specs(vec![spec("t4", 4, " ", false)]),
            Err(CatalogError::MissingInstanceType(_))
        ));
        assert!(matches!(
            GpuCatalog::from_specs(vec![spec("cpu", 0, "c.x", true)]),
            Err(CatalogError::CpuMultinode(_))
        ));
        let mut no_cpu = spec("t4", 4, "g.x", false);
        no_cpu.cpus_per_node = 0;
        assert!(matches!(
            GpuCatalog::from_specs(vec![no_cpu]),
            Err(CatalogError::EmptyNode(_))
        ));
    }

    #[test]
    fn from_json_reads_a_configured_catalog() {
        let json = r#"[
            {"name":"h100","gpus_per_node":8,"instance_type":"p5.48xlarge",
             "cpus_per_node":192,"memory_gib_per_node":2048,"multinode":true},
            {"name":"cpu","gpus_per_node":0,"instance_type":"m7i.large",
             "cpus_per_node":2,"memory_gib_per_node":8,"multinode":false,
             "aliases":["cpu-small"]}
        ]"#;
        let catalog = GpuCatalog::from_json(json).unwrap();
        assert_eq!(catalog.names().collect::<Vec<_>>(), ["h100", "cpu"]);
        assert!(catalog.lookup("cpu").unwrap().is_cpu_only());
        assert_eq!(catalog.lookup("cpu-small").unwrap().name.as_str(), "cpu");
        assert!(catalog.lookup("h100").unwrap().aliases.is_empty());
        assert!(catalog.lookup("t4").is_err());
    }

    #[test]
    fn from_json_refuses_bad_json_bad_names_and_unknown_fields() {
        assert!(matches!(
            GpuCatalog::from_json("{"),
            Err(CatalogError::Json(_))
        ));
        assert_eq!(GpuCatalog::from_json("[]"), Err(CatalogError::Empty));
        let bad_name = r#"[{"name":"H100","gpus_per_node":8,"instance_type":"p5",
            "cpus_per_node":1,"memory_gib_per_node":1,"multinode":false}]"#;
        let err = GpuCatalog::from_json(bad_name).unwrap_err();
        assert!(err.to_string().contains("lower-case"), "{err}");
        let typo = r#"[{"name":"h100","gpus_per_node":8,"instance_type":"p5",
            "cpus_per_node":1,"memory_gib_per_node":1,"multinode":false,"multi_node":true}]"#;
        assert!(matches!(
            GpuCatalog::from_json(typo),
            Err(CatalogError::Json(_))
        ));
    }

    #[test]
    fn catalog_serializes_as_a_list_that_reads_back_identically() {
        let catalog = GpuCatalog::default();
        let json = serde_json::to_string(&catalog).unwrap();
        assert!(
            json.starts_with(r#"[{"name":"t4","gpus_per_node":4"#),
            "{json}"
        );
        assert_eq!(GpuCatalog::from_json(&json), Ok(catalog));
    }
}
