package model

import "github.com/ringmaster-ml/ringmaster/pkg/model/config"

// The model's description lives in the leaf package model/config (so that
// jobspec and the coordinator need not link the layers); these are its names.
type (
	Config     = config.Config
	Arch       = config.Arch
	Activation = config.Activation
)

const (
	ArchGPT    = config.ArchGPT
	ArchBERT   = config.ArchBERT
	ArchEncDec = config.ArchEncDec

	GELU     = config.GELU
	GELUTanh = config.GELUTanh
	ReLU     = config.ReLU
)
