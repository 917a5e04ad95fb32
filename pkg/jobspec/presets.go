package jobspec

import (
	"fmt"
	"sort"

	model "github.com/ringmaster-ml/ringmaster/pkg/model/config"
)

// Presets are complete, named job specs: the built-in default and the
// reference recipes that ../shared/bench/torch runs in PyTorch.
var presetMakers = map[string]func() Spec{
	"sort":            Default,
	"babygpt":         BabyGPT,
	"bert-mlm":        BERTMLM,
	"seq2seq-reverse": Seq2SeqReverse,
	"add":             Add,
}

// PresetNames lists the preset names, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(presetMakers))
	for n := range presetMakers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Preset returns the named preset with defaults filled in.
func Preset(name string) (Spec, error) {
	mk, ok := presetMakers[name]
	if !ok {
		return Spec{}, fmt.Errorf("unknown preset %q; want one of %v", name, PresetNames())
	}
	return mk().WithDefaults(), nil
}

// Default is the built-in job: a small GPT learns minGPT's sort task. It needs
// no data file and converges in well under a minute on two cores.
func Default() Spec {
	return Spec{
		Name:  "sort-gpt",
		Model: model.Config{Arch: model.ArchGPT, NLayer: 2, NHead: 4, NEmbd: 64, BlockSize: 11},
		Data:  DataSpec{Task: TaskSort, Length: 6, Digits: 3},
		Train: TrainSpec{
			MaxIters: 600, BatchSize: 64, LearningRate: 1e-3, MinLR: 1e-4, WarmupIters: 50,
			Beta1: 0.9, Beta2: 0.95, WeightDecay: 0.1, GradClip: 1.0, Seed: 1337,
			EvalInterval: 200, EvalIters: 10, LogInterval: 50, HeldOut: 5000,
		},
		Checkpoint: CheckpointSpec{Interval: 100},
	}
}

// BabyGPT is nanoGPT's CPU "baby GPT" on tiny shakespeare (../shared/bench/torch/babygpt.py).
func BabyGPT() Spec {
	return Spec{
		Name:  "babygpt",
		Model: model.Config{Arch: model.ArchGPT, NLayer: 4, NHead: 4, NEmbd: 128, BlockSize: 64},
		Data:  DataSpec{Task: TaskText, Path: "../shared/data/tinyshakespeare.txt"},
		Train: TrainSpec{
			MaxIters: 2000, BatchSize: 12, LearningRate: 1e-3, MinLR: 1e-4, WarmupIters: 100, LRDecayIters: 2000,
			Beta1: 0.9, Beta2: 0.99, WeightDecay: 0.1, GradClip: 1.0, Seed: 1337,
			EvalInterval: 250, EvalIters: 20, LogInterval: 50,
		},
		Checkpoint: CheckpointSpec{Interval: 500},
	}
}

// BERTMLM is the original BERT masked LM on tiny shakespeare (../shared/bench/torch/bert_mlm.py,
// 6000-iteration schedule).
func BERTMLM() Spec {
	return Spec{
		Name:  "bert-mlm",
		Model: model.Config{Arch: model.ArchBERT, NLayer: 4, NHead: 4, NEmbd: 128, BlockSize: 64},
		Data:  DataSpec{Task: TaskText, Path: "../shared/data/tinyshakespeare.txt", MaskProb: 0.15},
		Train: TrainSpec{
			MaxIters: 6000, BatchSize: 12, LearningRate: 1e-3, MinLR: 1e-4, WarmupIters: 100, LRDecayIters: 6000,
			Beta1: 0.9, Beta2: 0.99, WeightDecay: 0.1, GradClip: 1.0, Seed: 1337,
			EvalInterval: 1000, EvalIters: 20, LogInterval: 100,
		},
		Checkpoint: CheckpointSpec{Interval: 1000},
	}
}

// Seq2SeqReverse is the 2017 encoder–decoder Transformer reversing digit strings
// (../shared/bench/torch/seq2seq_reverse.py).
func Seq2SeqReverse() Spec {
	return Spec{
		Name: "seq2seq-reverse",
		Model: model.Config{Arch: model.ArchEncDec, NLayer: 2, NDecLayer: 2, NHead: 4, NEmbd: 128, NHidden: 512,
			BlockSize: 64},
		Data: DataSpec{Task: TaskReverse},
		Train: TrainSpec{
			MaxIters: 1500, BatchSize: 32, LearningRate: 1e-3, MinLR: 1e-4, WarmupIters: 100, LRDecayIters: 1500,
			Beta1: 0.9, Beta2: 0.98, WeightDecay: 0.01, GradClip: 0, Seed: 1337,
			EvalInterval: 500, EvalIters: 10, LogInterval: 50, EvalSeed: 20170612, HeldOut: 1000,
		},
		Checkpoint: CheckpointSpec{Interval: 500},
	}
}

// Add is minGPT's adder: two 2-digit numbers, the sum's digits reversed.
func Add() Spec {
	return Spec{
		Name:  "add-gpt",
		Model: model.Config{Arch: model.ArchGPT, NLayer: 2, NHead: 4, NEmbd: 64, BlockSize: 6},
		Data:  DataSpec{Task: TaskAdd, Digits: 2},
		Train: TrainSpec{
			MaxIters: 2000, BatchSize: 64, LearningRate: 1e-3, MinLR: 1e-4, WarmupIters: 100,
			Beta1: 0.9, Beta2: 0.95, WeightDecay: 0.1, GradClip: 1.0, Seed: 1337,
			EvalInterval: 500, EvalIters: 10, LogInterval: 100, HeldOut: 1000,
		},
		Checkpoint: CheckpointSpec{Interval: 500},
	}
}
