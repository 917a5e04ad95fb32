// Package freeport hands out free 127.0.0.1 TCP ports that no other
// ringmaster process on the machine has been handed, for clusters that lay
// out their addresses before starting (a Raft --peers list names every
// node's ports up front).
//
// Two things made "listen on a port, close it, use it later" collide:
// ports from the kernel's ephemeral range (32768+) are also what outgoing
// connections get, so a node restarted on its port can find it taken; and
// test processes that pick ports at random from the same range pick the
// same one now and then (CI: "bind: address already in use"). So ports come
// from below the ephemeral range, and each is claimed with a file in
// os.TempDir()/ringmaster-ports, created exclusively and holding the
// claimer's PID; a claim whose process has exited is stale and reused.
package freeport
