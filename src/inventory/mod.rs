//! Ansible inventories (placeholder; filled in by the inventory work).
