//! The consistent-hash ring that spreads keys over standalone Redis nodes in sharded mode.
//!
//! Each node owns [`VIRTUAL_NODES`] points on a 64-bit circle, at the hashes of `"{node}#{i}"`;
//! a key belongs to the node owning the first point at or after the key's hash (wrapping
//! around). Adding a node therefore moves only about `1/(n+1)` of the keys — all to the new
//! node — and removing it moves exactly those back.
//!
//! The hash (FNV-1a 64 with the MurmurHash3 finalizer) is part of the on-wire contract: every
//! replica must place every key on the same node, in this version and the next. It must never
//! change, nor depend on the platform, the process or the order the nodes are listed in.

/// Points each node owns on the ring; enough for an even spread (about ±10 % with a few nodes).
pub const VIRTUAL_NODES: usize = 160;

/// A consistent-hash ring over nodes named by stable identities (their addresses).
#[derive(Clone, Debug)]
pub struct Ring {
    /// `(point, node index)` sorted by point, ties broken by node name so the ring does not
    /// depend on the order nodes are listed in.
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// Builds the ring; `node_for` answers indexes into `nodes`. Node names should be unique:
    /// two nodes with the same name would share the same points.
    pub fn new<S: AsRef<str>>(nodes: &[S]) -> Self {
        let mut points: Vec<(u64, usize)> = nodes
            .iter()
            .enumerate()
            .flat_map(|(index, name)| {
                (0..VIRTUAL_NODES)
                    .map(move |i| (hash(format!("{}#{i}", name.as_ref()).as_bytes()), index))
            })
            .collect();
        points.sort_by(|(pa, a), (pb, b)| {
            pa.cmp(pb)
                .then_with(|| nodes[*a].as_ref().cmp(nodes[*b].as_ref()))
        });
        Self { points }
    }

    /// The index of the node that owns `key`, or `None` for a ring without nodes.
    pub fn node_for(&self, key: &[u8]) -> Option<usize> {
        let h = hash(key);
        let at = self.points.partition_point(|&(point, _)| point < h);
        self.points
            .get(at)
            .or_else(|| self.points.first())
            .map(|&(_, node)| node)
    }
}

/// The ring's hash: FNV-1a 64, then the MurmurHash3 64-bit finalizer so that similar inputs
/// ("node#1", "node#2") land far apart.
pub fn hash(bytes: &[u8]) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    });
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: usize = 100_000;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("10.0.0.{i}:6379/0")).collect()
    }

    fn keys() -> Vec<String> {
        (0..KEYS).map(|i| format!("vacancy:cal:{i}")).collect()
    }

    /// The name of the owner of every key.
    fn owners<'a>(nodes: &'a [String], keys: &[String]) -> Vec<&'a str> {
        let ring = Ring::new(nodes);
        keys.iter()
            .map(|k| match ring.node_for(k.as_bytes()) {
                Some(i) => nodes[i].as_str(),
                None => panic!("a ring with nodes must place every key"),
            })
            .collect()
    }

    #[test]
    fn the_hash_is_stable() {
        // Pinned values (computed independently): a change here remaps every key of every
        // deployment.
        assert_eq!(hash(b""), 0xefd0_1f60_ba99_2926);
        assert_eq!(hash(b"vacancy:cal:1"), 0x61ff_dfe7_b367_c0b7);
        assert_eq!(hash(b"127.0.0.1:6379/0#0"), 0xced1_33c6_ee22_8eab);
    }

    #[test]
    fn keys_spread_evenly_over_three_nodes() {
        let nodes = names(3);
        let keys = keys();
        let owners = owners(&nodes, &keys);
        for node in &nodes {
            let share = owners.iter().filter(|o| **o == node.as_str()).count() as f64 / KEYS as f64;
            assert!(
                (0.15..=0.45).contains(&share),
                "{node} owns {:.1} % of the keys",
                share * 100.0
            );
        }
    }

    #[test]
    fn adding_a_fourth_node_moves_about_a_quarter_of_the_keys_all_to_it_and_back() {
        let three = names(3);
        let four = names(4);
        let keys = keys();
        let before = owners(&three, &keys);
        let after = owners(&four, &keys);

        let moved: Vec<usize> = (0..KEYS).filter(|&i| before[i] != after[i]).collect();
        let share = moved.len() as f64 / KEYS as f64;
        assert!(
            (0.15..=0.35).contains(&share),
            "adding a node moved {:.1} % of the keys",
            share * 100.0
        );
        assert!(
            moved.iter().all(|&i| after[i] == four[3]),
            "keys only ever move to the new node"
        );

        let removed = owners(&three, &keys);
        assert_eq!(removed, before, "removing the node moves its keys back");
    }

    #[test]
    fn the_order_nodes_are_listed_in_does_not_matter() {
        let nodes = names(3);
        let shuffled = vec![nodes[2].clone(), nodes[0].clone(), nodes[1].clone()];
        let keys = keys();
        assert_eq!(owners(&nodes, &keys), owners(&shuffled, &keys));
    }

    #[test]
    fn an_empty_ring_places_nothing_and_one_node_takes_everything() {
        assert_eq!(Ring::new::<String>(&[]).node_for(b"k"), None);
        let one = Ring::new(&names(1));
        assert!(keys().iter().all(|k| one.node_for(k.as_bytes()) == Some(0)));
    }
}
