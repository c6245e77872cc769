//! The placement engine behind [`schedule`].
//!
//! Rule for a free (not pinned) instance: among the ready nodes that pass
//! the proc's filters and have the instance's CPU and memory free, take the
//! one with the fewest instances of the proc (spread), then the most free
//! memory, then the most free CPU, then the smallest name. Spread is a
//! preference, never a reason to fail: with more instances than nodes,
//! nodes take a second instance each, and so on.
//!
//! How it stays fast (see docs/reference/scheduler.md):
//! - Procs with the same filters share a *group*: its ready, matching
//!   nodes are found once (starting from a label index for `==`), not per
//!   instance.
//! - Each group keeps a max-heap of its nodes by free (memory, cpu, name).
//!   A node's free resources only shrink during a run, so a heap entry
//!   left over-stated by a placement through another group is fixed when
//!   it reaches the top (lazy decrease-key). If the top lacks the memory,
//!   no node of the group has it.
//! - Spread uses levels: at level `c` only nodes holding `c` instances of
//!   the proc take one; a node taken at level `c` waits out of the heap
//!   until level `c + 1`, and a node that already holds more waits until
//!   its level. So a placement costs a few heap operations, O(log nodes),
//!   and a node without the CPU is set aside once per proc.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use super::filter::{FilterError, FilterSet};
use super::reason::{Best, Context, NodeCounts, Reason};
use super::types::{Node, Placement, ProcRequest, Resources, Schedule, Unplaced};

/// Input the scheduler refuses as a whole: it would make placements
/// ambiguous rather than merely impossible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("node `{0}` is listed twice; node names must be unique")]
    DuplicateNode(String),
    #[error("{0} nodes are more than the scheduler handles (at most {max})", max = u32::MAX)]
    TooManyNodes(usize),
}

/// Places the pending instances of `requests` on `nodes`.
///
/// Pure and deterministic: the same nodes and requests, in any order, give
/// the same placements. Placed instances are never moved. Stateful
/// instances with a home are placed first, on their home or not at all;
/// then procs in (app, proc) order, instances in number order.
pub fn schedule(nodes: &[Node], requests: &[ProcRequest]) -> Result<Schedule, InputError> {
    let mut engine = Engine::new(nodes)?;

    let mut order: Vec<usize> = (0..requests.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (&requests[a], &requests[b]);
        ra.app
            .cmp(&rb.app)
            .then_with(|| ra.proc.cmp(&rb.proc))
            .then(a.cmp(&b))
    });

    let mut work = Vec::with_capacity(order.len());
    for &index in &order {
        if let Some(w) = engine.prepare(index, &requests[index]) {
            work.push(w);
        }
    }
    // Pinned instances first: they have exactly one possible node, which
    // a free instance of an earlier proc must not take from them.
    for w in &mut work {
        engine.place_pinned(w, &requests[w.request]);
    }
    for w in &work {
        engine.place_free(w, &requests[w.request]);
    }
    Ok(engine.out)
}

/// What is left to do for one request once it has been checked.
struct Work<'r> {
    request: usize,
    filters: FilterSet,
    /// Stateful instances and the node holding their volumes.
    pinned: Vec<(u32, &'r str)>,
    /// Instances that may go to any node, ascending.
    free: Vec<u32>,
    /// Ranks the pinned instances landed on, for spread.
    pinned_nodes: Vec<u32>,
}

/// Heap key: most free memory, then most free CPU, then smallest name
/// (ranks follow name order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    memory: u64,
    cpu: u64,
    rank: Reverse<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Stats {
    most_memory: u32,
    most_cpu: u32,
}

/// Procs with the same filters share a group: one node set, one heap.
struct Group {
    filters: FilterSet,
    /// Ready nodes passing the filters, as ranks.
    members: Vec<u32>,
    /// Built on first use. Taken out while a proc of the group is placed.
    heap: Option<BinaryHeap<Key>>,
    /// The nodes with the most free memory and CPU, valid while no
    /// placement has happened since (`placements` at the time).
    stats: Option<(u64, Stats)>,
}

struct Engine<'n> {
    nodes: &'n [Node],
    /// Node index (into `nodes`) of each rank; ranks sort by name.
    by_rank: Vec<u32>,
    rank_of: HashMap<&'n str, u32, FastHash>,
    free_memory: Vec<u64>,
    free_cpu: Vec<u64>,
    ready: usize,
    unavailable: NodeCounts,
    /// label key -> value -> ready ranks; `node` maps node names.
    label_index: Option<HashMap<&'n str, HashMap<&'n str, Vec<u32>>>>,
    groups: Vec<Group>,
    group_of: HashMap<FilterSet, usize>,
    /// Placements so far; a change invalidates cached group stats.
    placements: u64,
    /// Instances of the current proc per rank; only `touched` are non-zero.
    counts: Vec<u32>,
    touched: Vec<u32>,
    /// Scratch of `place_free`, kept to reuse the allocations.
    next: Vec<u32>,
    aside: Vec<u32>,
    deferred: BTreeMap<u32, Vec<u32>>,
    out: Schedule,
}

impl<'n> Engine<'n> {
    fn new(nodes: &'n [Node]) -> Result<Self, InputError> {
        if u32::try_from(nodes.len()).is_err() {
            return Err(InputError::TooManyNodes(nodes.len()));
        }
        let mut order: Vec<u32> = (0..nodes.len() as u32).collect();
        order.sort_by(|&a, &b| nodes[a as usize].name.cmp(&nodes[b as usize].name));
        let mut rank_of = HashMap::with_capacity_and_hasher(nodes.len(), FastHash::default());
        let mut free_memory = Vec::with_capacity(nodes.len());
        let mut free_cpu = Vec::with_capacity(nodes.len());
        let mut unavailable = NodeCounts::default();
        let mut ready = 0;
        for (rank, &index) in order.iter().enumerate() {
            let node = &nodes[index as usize];
            if rank_of.insert(node.name.as_str(), rank as u32).is_some() {
                return Err(InputError::DuplicateNode(node.name.clone()));
            }
            let free = node.free();
            free_memory.push(free.memory_bytes);
            free_cpu.push(free.cpu_millis);
            if node.status.is_schedulable() {
                ready += 1;
            } else {
                unavailable.count(node.status);
            }
        }
        Ok(Engine {
            nodes,
            counts: vec![0; nodes.len()],
            by_rank: order,
            rank_of,
            free_memory,
            free_cpu,
            ready,
            unavailable,
            label_index: None,
            groups: Vec::new(),
            group_of: HashMap::new(),
            placements: 0,
            touched: Vec::new(),
            next: Vec::new(),
            aside: Vec::new(),
            deferred: BTreeMap::new(),
            out: Schedule::default(),
        })
    }

    fn node(&self, rank: u32) -> &'n Node {
        &self.nodes[self.by_rank[rank as usize] as usize]
    }

    fn key(&self, rank: u32) -> Key {
        key(&self.free_memory, &self.free_cpu, rank)
    }

    fn free(&self, rank: u32) -> Resources {
        Resources::new(
            self.free_cpu[rank as usize],
            self.free_memory[rank as usize],
        )
    }

    fn fail(&mut self, request: usize, instances: impl IntoIterator<Item = u32>, reason: Reason) {
        let reason = Arc::new(reason);
        for instance in instances {
            self.out.unplaced.push(Unplaced {
                request,
                instance,
                reason: Arc::clone(&reason),
            });
        }
    }

    fn record(&mut self, request: usize, instance: u32, rank: u32, need: Resources) {
        let r = rank as usize;
        // Callers checked the fit; saturating keeps that an invariant.
        self.free_memory[r] = self.free_memory[r].saturating_sub(need.memory_bytes);
        self.free_cpu[r] = self.free_cpu[r].saturating_sub(need.cpu_millis);
        self.placements += 1;
        self.out.placements.push(Placement {
            request,
            instance,
            node: self.by_rank[r] as usize,
        });
    }

    /// Checks a request and sorts its pending instances into pinned and
    /// free ones; fails what cannot be placed at all.
    fn prepare<'r>(&mut self, index: usize, req: &'r ProcRequest) -> Option<Work<'r>> {
        if req.pending.is_empty() {
            return None;
        }
        let filters = match FilterSet::parse(&req.filters) {
            Ok(f) => f,
            Err(e) => {
                self.fail(
                    index,
                    req.pending.iter().map(|p| p.instance),
                    Reason::InvalidFilter(e),
                );
                return None;
            }
        };
        let mut pending: Vec<(u32, Option<&'r str>)> = req
            .pending
            .iter()
            .map(|p| (p.instance, p.home.as_deref()))
            .collect();
        // Stable: of two entries for one instance, the first listed counts.
        pending.sort_by_key(|p| p.0);
        // Sorted and searched rather than hashed: a big proc passes
        // thousands of placed instances on every call.
        let mut placed: Vec<(u32, &str)> = req
            .placed
            .iter()
            .map(|p| (p.instance, p.node.as_str()))
            .collect();
        placed.sort_unstable();
        let mut work = Work {
            request: index,
            filters,
            pinned: Vec::new(),
            free: Vec::with_capacity(pending.len()),
            pinned_nodes: Vec::new(),
        };
        let mut previous = None;
        for (instance, home) in pending {
            if previous == Some(instance) {
                self.fail(index, [instance], Reason::DuplicateInstance);
                continue;
            }
            previous = Some(instance);
            let on = placed.partition_point(|p| p.0 < instance);
            if let Some(&(_, node)) = placed.get(on).filter(|p| p.0 == instance) {
                let node = node.to_owned();
                self.fail(index, [instance], Reason::AlreadyPlaced { node });
            } else if let (true, Some(home)) = (req.stateful, home) {
                work.pinned.push((instance, home));
            } else {
                work.free.push(instance);
            }
        }
        Some(work)
    }

    /// Places each stateful instance on its home, or says why not. It is
    /// never moved elsewhere: its volumes are there.
    fn place_pinned(&mut self, w: &mut Work<'_>, req: &ProcRequest) {
        let need = req.resources;
        for &(instance, home) in &w.pinned {
            let Some(&rank) = self.rank_of.get(home) else {
                let node = home.to_owned();
                self.fail(w.request, [instance], Reason::HomeNotRegistered { node });
                continue;
            };
            let node = self.node(rank);
            let reason = if !node.status.is_schedulable() {
                Some(Reason::HomeUnavailable {
                    node: node.name.clone(),
                    status: node.status,
                })
            } else if !w.filters.matches(&node.name, &node.labels) {
                Some(Reason::HomeFilteredOut {
                    node: node.name.clone(),
                    filters: w.filters.to_string(),
                })
            } else if !need.fits_in(self.free(rank)) {
                Some(Reason::HomeFull {
                    node: node.name.clone(),
                    need,
                    free: self.free(rank),
                })
            } else {
                None
            };
            match reason {
                Some(reason) => self.fail(w.request, [instance], reason),
                None => {
                    self.record(w.request, instance, rank, need);
                    w.pinned_nodes.push(rank);
                }
            }
        }
    }

    /// Places the free instances of one proc (rule and method: module docs).
    fn place_free(&mut self, w: &Work<'_>, req: &ProcRequest) {
        if w.free.is_empty() {
            return;
        }
        let need = req.resources;
        let g = self.group(&w.filters);
        if self.groups[g].members.is_empty() {
            let reason = self.empty_group_reason(g);
            self.fail(w.request, w.free.iter().copied(), reason);
            return;
        }
        // A cluster that is full stays full: skip the heap while nothing
        // has been placed since the last scan said nothing fits.
        if let Some((at, stats)) = self.groups[g].stats {
            if at == self.placements
                && (self.free_memory[stats.most_memory as usize] < need.memory_bytes
                    || self.free_cpu[stats.most_cpu as usize] < need.cpu_millis)
            {
                let reason = self.no_fit_reason(g, need);
                self.fail(w.request, w.free.iter().copied(), reason);
                return;
            }
        }

        for p in &req.placed {
            if let Some(&rank) = self.rank_of.get(p.node.as_str()) {
                self.bump(rank);
            }
        }
        for &rank in &w.pinned_nodes {
            self.bump(rank);
        }

        let mut heap = match self.groups[g].heap.take() {
            Some(heap) => heap,
            None => self.groups[g]
                .members
                .iter()
                .map(|&r| key(&self.free_memory, &self.free_cpu, r))
                .collect(),
        };
        self.next.clear();
        self.aside.clear();
        self.deferred.clear();
        let mut level = 0u32;
        let mut failed_from = None;

        'instances: for (i, &instance) in w.free.iter().enumerate() {
            loop {
                let top = heap.peek().copied();
                let candidate = match top {
                    Some(k) => {
                        let rank = k.rank.0;
                        if k != self.key(rank) {
                            // Over-stated by a placement through another group.
                            heap.pop();
                            heap.push(self.key(rank));
                            continue;
                        }
                        (k.memory >= need.memory_bytes).then_some(rank)
                    }
                    None => None,
                };
                let Some(rank) = candidate else {
                    // Nothing left at this level has the memory.
                    if self.advance_level(&mut heap, &mut level) {
                        continue;
                    }
                    failed_from = Some(i);
                    break 'instances;
                };
                heap.pop();
                let count = self.counts[rank as usize];
                if count > level {
                    self.deferred.entry(count).or_default().push(rank);
                    continue;
                }
                if self.free_cpu[rank as usize] < need.cpu_millis {
                    // CPU only shrinks: this node is out for the whole proc.
                    self.aside.push(rank);
                    continue;
                }
                self.record(w.request, instance, rank, need);
                self.bump(rank);
                self.next.push(rank);
                continue 'instances;
            }
        }

        for &rank in self.next.iter().chain(&self.aside) {
            heap.push(key(&self.free_memory, &self.free_cpu, rank));
        }
        for ranks in self.deferred.values() {
            for &rank in ranks {
                heap.push(key(&self.free_memory, &self.free_cpu, rank));
            }
        }
        self.groups[g].heap = Some(heap);
        for &rank in &self.touched {
            self.counts[rank as usize] = 0;
        }
        self.touched.clear();

        if let Some(i) = failed_from {
            let reason = self.no_fit_reason(g, need);
            self.fail(w.request, w.free[i..].iter().copied(), reason);
        }
    }

    fn bump(&mut self, rank: u32) {
        let count = &mut self.counts[rank as usize];
        if *count == 0 {
            self.touched.push(rank);
        }
        *count += 1;
    }

    /// Moves to the next level that has nodes: those that took an instance
    /// at this level, and those that already held that many. False when
    /// there is none: every node left lacks the resources.
    fn advance_level(&mut self, heap: &mut BinaryHeap<Key>, level: &mut u32) -> bool {
        *level = if !self.next.is_empty() {
            *level + 1
        } else if let Some((&first, _)) = self.deferred.first_key_value() {
            first
        } else {
            return false;
        };
        for rank in self.next.drain(..) {
            heap.push(key(&self.free_memory, &self.free_cpu, rank));
        }
        if let Some(ranks) = self.deferred.remove(level) {
            for rank in ranks {
                heap.push(key(&self.free_memory, &self.free_cpu, rank));
            }
        }
        true
    }

    /// The group of ready nodes that pass `filters`, made on first use.
    fn group(&mut self, filters: &FilterSet) -> usize {
        if let Some(&g) = self.group_of.get(filters) {
            return g;
        }
        let nodes = self.nodes;
        let candidates: Vec<u32> = match self.narrowest_equal(filters) {
            Some(ranks) => ranks,
            None => (0..self.by_rank.len() as u32)
                .filter(|&r| self.node(r).status.is_schedulable())
                .collect(),
        };
        let members = candidates
            .into_iter()
            .filter(|&r| {
                let node = &nodes[self.by_rank[r as usize] as usize];
                filters.matches(&node.name, &node.labels)
            })
            .collect();
        self.groups.push(Group {
            filters: filters.clone(),
            members,
            heap: None,
            stats: None,
        });
        let g = self.groups.len() - 1;
        self.group_of.insert(filters.clone(), g);
        g
    }

    /// The ready nodes of the most selective `==` filter, if any, from the
    /// label index, so a filter that matches few nodes costs few checks.
    fn narrowest_equal(&mut self, filters: &FilterSet) -> Option<Vec<u32>> {
        if !filters.filters().iter().any(|f| f.equal) {
            return None;
        }
        let nodes: &'n [Node] = self.nodes;
        let by_rank = &self.by_rank;
        let index = self.label_index.get_or_insert_with(|| {
            let mut index: HashMap<&'n str, HashMap<&'n str, Vec<u32>>> = HashMap::new();
            for (rank, &i) in by_rank.iter().enumerate() {
                let node = &nodes[i as usize];
                if !node.status.is_schedulable() {
                    continue;
                }
                let names = std::iter::once((super::filter::NODE_NAME_KEY, node.name.as_str()));
                let labels = node
                    .labels
                    .iter()
                    .filter(|(k, _)| k.as_str() != super::filter::NODE_NAME_KEY)
                    .map(|(k, v)| (k.as_str(), v.as_str()));
                for (k, v) in names.chain(labels) {
                    index
                        .entry(k)
                        .or_default()
                        .entry(v)
                        .or_default()
                        .push(rank as u32);
                }
            }
            index
        });
        filters
            .filters()
            .iter()
            .filter(|f| f.equal)
            .map(|f| {
                index
                    .get(f.key.as_str())
                    .and_then(|values| values.get(f.value.as_str()))
                    .map_or(&[][..], Vec::as_slice)
            })
            .min_by_key(|ranks| ranks.len())
            .map(<[u32]>::to_vec)
    }

    fn context(&self, g: usize) -> Context {
        Context {
            unavailable: self.unavailable,
            filtered_out: self.ready - self.groups[g].members.len(),
        }
    }

    fn empty_group_reason(&self, g: usize) -> Reason {
        if self.nodes.is_empty() {
            Reason::NoNodes
        } else if self.ready == 0 {
            Reason::NoReadyNodes(self.unavailable)
        } else {
            Reason::FilteredOut {
                filters: self.groups[g].filters.to_string(),
                ready: self.ready,
                unavailable: self.unavailable,
            }
        }
    }

    /// Names the binding resource once nothing in group `g` fits `need`.
    fn no_fit_reason(&mut self, g: usize, need: Resources) -> Reason {
        let stats = match self.groups[g].stats {
            Some((at, stats)) if at == self.placements => stats,
            _ => {
                let stats = self.scan(g);
                self.groups[g].stats = Some((self.placements, stats));
                stats
            }
        };
        let best = |rank: u32| Best {
            node: self.node(rank).name.clone(),
            free: self.free(rank),
        };
        let context = self.context(g);
        if self.free_memory[stats.most_memory as usize] < need.memory_bytes {
            Reason::Memory {
                need: need.memory_bytes,
                largest: best(stats.most_memory),
                context,
            }
        } else if self.free_cpu[stats.most_cpu as usize] < need.cpu_millis {
            Reason::Cpu {
                need: need.cpu_millis,
                largest: best(stats.most_cpu),
                context,
            }
        } else {
            Reason::MemoryAndCpu {
                need,
                most_memory: best(stats.most_memory),
                most_cpu: best(stats.most_cpu),
                context,
            }
        }
    }

    /// The members with the most free memory and the most free CPU, ties
    /// to the other resource, then to the smallest name. Only called for a
    /// group with members.
    fn scan(&self, g: usize) -> Stats {
        let members = &self.groups[g].members;
        let (fm, fc) = (&self.free_memory, &self.free_cpu);
        let by_memory = |&r: &u32| (fm[r as usize], fc[r as usize], Reverse(r));
        let by_cpu = |&r: &u32| (fc[r as usize], fm[r as usize], Reverse(r));
        Stats {
            most_memory: members.iter().copied().max_by_key(by_memory).unwrap_or(0),
            most_cpu: members.iter().copied().max_by_key(by_cpu).unwrap_or(0),
        }
    }
}

fn key(free_memory: &[u64], free_cpu: &[u64], rank: u32) -> Key {
    Key {
        memory: free_memory[rank as usize],
        cpu: free_cpu[rank as usize],
        rank: Reverse(rank),
    }
}

/// Why a filter string fails, for callers that check filters before
/// scheduling (e.g. when a desired proc is read).
pub fn check_filters<S: AsRef<str>>(filters: &[S]) -> Result<(), FilterError> {
    FilterSet::parse(filters).map(|_| ())
}

/// FxHash (rustc-hash) for the node-name lookups done once per placed
/// instance. The keys are node names from the cluster's own registrations,
/// a few thousand at most, so SipHash's resistance to crafted collisions
/// buys nothing here and costs several times the time.
type FastHash = rustc_hash::FxBuildHasher;
