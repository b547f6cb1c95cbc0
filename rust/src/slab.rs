//! The storage of the identity memos: entries keyed by an object's address, kept in a
//! slab in the order they were made, bounded by a cost and evicted by CLOCK.
//!
//! A warm request meets a history's objects in the order they were first read, so the
//! entries it looks up lie one after another in memory (the address index itself is
//! small): the hardware prefetcher follows, where entries stored in a hash table would be
//! one cache miss each.

use rustc_hash::FxHashMap;

struct Slot<E> {
    address: usize,
    cost: usize,
    referenced: bool,
    entry: E,
}

pub struct Slab<E> {
    index: FxHashMap<usize, u32>,
    slots: Vec<Option<Slot<E>>>,
    free: Vec<u32>,
    hand: usize,
    bytes: usize,
}

impl<E> Default for Slab<E> {
    fn default() -> Self {
        Slab { index: FxHashMap::default(), slots: Vec::new(), free: Vec::new(), hand: 0, bytes: 0 }
    }
}

impl<E> Slab<E> {
    /// The entry for `address`, marked as used (CLOCK spares it once).
    pub fn get_mut(&mut self, address: usize) -> Option<&mut E> {
        let &i = self.index.get(&address)?;
        let slot = self.slots[i as usize].as_mut()?;
        slot.referenced = true;
        Some(&mut slot.entry)
    }

    /// Make room for `additional` more entries, so that storing a whole read (thousands
    /// of entries) grows the table once instead of copying it at every doubling.
    pub fn reserve(&mut self, additional: usize) {
        self.slots.reserve(additional.saturating_sub(self.free.len()));
        self.index.reserve(additional);
    }

    /// Take the entry for `address` out.
    pub fn remove(&mut self, address: usize) -> Option<E> {
        let i = self.index.remove(&address)?;
        let slot = self.slots[i as usize].take()?;
        self.free.push(i);
        self.bytes -= slot.cost;
        Some(slot.entry)
    }

    /// Store `entry` for `address` at `cost`, first evicting (into `evicted`) what must go
    /// to stay within `max_cost`. The caller removes any previous entry for `address`.
    pub fn insert(&mut self, address: usize, cost: usize, entry: E, max_cost: usize, evicted: &mut Vec<E>) {
        debug_assert!(!self.index.contains_key(&address));
        let mut spared = 0;
        while self.bytes + cost > max_cost && !self.slots.is_empty() && spared <= 2 * self.slots.len() {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let at = self.hand;
            self.hand += 1;
            match &mut self.slots[at] {
                None => spared += 1,
                Some(slot) if slot.referenced => {
                    slot.referenced = false;
                    spared += 1;
                }
                Some(slot) => {
                    let address = slot.address;
                    evicted.extend(self.remove(address));
                }
            }
        }
        self.bytes += cost;
        let slot = Some(Slot { address, cost, referenced: false, entry });
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(address, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_replaced_and_removed_by_address() {
        let mut slab = Slab::default();
        let mut evicted = Vec::new();
        slab.insert(10, 1, "a", 100, &mut evicted);
        slab.insert(20, 1, "b", 100, &mut evicted);
        assert_eq!(slab.get_mut(10), Some(&mut "a"));
        assert_eq!(slab.remove(10), Some("a"));
        assert_eq!(slab.get_mut(10), None);
        slab.insert(10, 1, "c", 100, &mut evicted);
        assert_eq!(slab.get_mut(10), Some(&mut "c"));
        assert!(evicted.is_empty());
    }

    #[test]
    fn the_cost_bound_holds_and_used_entries_are_spared_once() {
        let mut slab = Slab::default();
        let mut evicted = Vec::new();
        for address in 0..10 {
            slab.insert(address, 10, address, 100, &mut evicted);
        }
        slab.get_mut(0); // used: spared by the next eviction
        slab.insert(100, 10, 100, 100, &mut evicted);
        assert_eq!(evicted, vec![1]);
        assert!(slab.get_mut(0).is_some());
        assert!(slab.bytes <= 100);
        slab.insert(200, 50, 200, 100, &mut evicted);
        assert!(slab.bytes <= 100);
        assert_eq!(evicted.len(), 6);
    }

    #[test]
    fn an_entry_costing_more_than_the_bound_still_fits_alone() {
        let mut slab = Slab::default();
        let mut evicted = Vec::new();
        slab.insert(1, 10, 1, 100, &mut evicted);
        slab.insert(2, 500, 2, 100, &mut evicted);
        assert_eq!(evicted, vec![1]);
        assert!(slab.get_mut(2).is_some());
    }
}
