// Package jobspec defines the job spec: the one document that says what to
// train (model config), on what (dataset), how (optimizer, schedule, batch) and
// where (parallel layout, checkpoints). The single-process trainer, the
// coordinator and the workers all accept exactly this format, in YAML or JSON.
//
// Parsing is strict: unknown fields, wrong types and out-of-range values are
// rejected before any work starts, with a message that names the field (as
// spelled in the spec) and what is expected. The package knows nothing about
// networks, files other than the spec itself, or training; it imports only
// the model's description (pkg/model/config), so the coordinator links no
// layers. Spec.ModelHash is the hash a worker presents on registration.
//
// EstimateMemory (estimate.go) is a spec's parameter count and the memory one
// worker needs for a layout (DP, TP, lanes): weights, gradients per lane,
// AdamW state (split under ZeRO-1) and activations, computed from the config
// without building the model, for admission checks anywhere (ringctl, the
// coordinator) that must not allocate or import more than this package.
package jobspec
