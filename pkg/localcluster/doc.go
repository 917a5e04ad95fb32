// Package localcluster starts a whole ringmaster cluster on one machine as
// separate processes on 127.0.0.1: three coordinators (a Raft group) and N
// workers, with free ports and their data and logs under one folder. It
// backs `ringctl local` and the multi-process tests, which kill its
// processes with signals and check what survived.
package localcluster
