package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ringmaster-ml/ringmaster/pkg/model"
	"github.com/ringmaster-ml/ringmaster/pkg/model/safetensors"
	"github.com/ringmaster-ml/ringmaster/pkg/train"
)

// newExportCmd is `ringctl export`: a saved model's weights in another layout.
func newExportCmd() *cobra.Command {
	var dir, layout, out string
	c := &cobra.Command{
		Use:   "export --model DIR --layout hf|nanogpt -o FILE",
		Short: "write a saved model's weights as safetensors in Hugging Face's GPT-2 layout (GPT) or nanoGPT's",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("-o: required (the .safetensors file to write)")
			}
			saved, err := train.Load(dir, model.Compute{}) // weights only: nothing is computed
			if err != nil {
				return err
			}
			ts := saved.Model.Params().Tensors()
			switch layout {
			case "nanogpt":
			case "hf":
				if saved.Spec.Model.Arch != model.ArchGPT {
					return usagef("--layout hf: Hugging Face's GPT-2 layout is for model.arch gpt, this model is %s", saved.Spec.Model.Arch)
				}
				ts = model.ToHFGPT2(ts)
			default:
				return usagef("--layout %q: want hf or nanogpt", layout)
			}
			if err := safetensors.WriteFile(out, ts, map[string]string{"format": "pt"}); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "%s: %d tensors in %s layout from %s (load it with -set train.init_from=%s)\n",
				out, len(ts), layout, filepath.Join(dir, train.WeightsFile), out)
			return nil
		},
	}
	c.Flags().StringVar(&dir, "model", "out/sort-gpt", "directory written by `ringctl train`")
	c.Flags().StringVar(&layout, "layout", "hf", "hf (GPT-2's Conv1D layout, no transformer. prefix) or nanogpt")
	c.Flags().StringVarP(&out, "output", "o", "", "file to write")
	return c
}
