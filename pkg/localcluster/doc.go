// Package localcluster starts a whole ringmaster cluster on one machine as
// separate processes on 127.0.0.1: three coordinators (a Raft group) and N
// workers, with free ports and their data and logs under one folder. It
// backs `ringctl local` and the multi-process tests, which kill its
// processes with signals and check what survived.
//
// The children die with their parent (Linux Pdeathsig, from one long-lived
// spawner thread) and sit in their own process groups. A cluster directory
// is claimed by an flock (LockDir) naming the owner's PID, and a running
// cluster publishes where its coordinators are (Publish, Find) so that
// client commands and `ringctl local stop` find it.
//
// In container mode (Config.Containers) each process runs instead in its
// own container on a private Docker network, with an address and network
// stack of its own, so that a test can cut one off the network
// (Disconnect) as well as kill or stop it; see containers.go.
package localcluster
