// Package replication is the database replicated on hashicorp/raft.
package replication
