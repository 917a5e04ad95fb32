// Package tp is Megatron-style tensor parallelism (Shoeybi et al. 2019;
// Megatron-LM's core/tensor_parallel): Group is a model.TensorParallel over
// a collective. It says what a rank of a TP group of t ranks holds and how
// partial results are combined; the model says where the layers go.
//
// Rank r holds attention heads [r·H/t, (r+1)·H/t) and MLP hidden units
// [r·F/t, (r+1)·F/t) of every block (H = n_head, F = n_hidden):
//
//   - column-parallel layers (GPT c_attn and mlp.c_fc; BERT query, key,
//     value and intermediate; encdec q_proj, k_proj, v_proj and fc1) keep the
//     output rows (PyTorch (out,in) layout) and bias entries of the local
//     heads or hidden units; GPT's fused c_attn keeps the local rows of each
//     of its q, k and v blocks;
//   - row-parallel layers (attention c_proj / dense / out_proj, MLP c_proj /
//     output / fc2) keep the input columns of the local heads or hidden units;
//     their bias is whole and is added once, after the sum;
//   - embeddings, LayerNorms and the heads (lm_head, ln_f, the BERT MLM and
//     [CLS] heads) are replicated: every rank holds and updates a full copy.
//
// Per block there are two all-reduces forward (the Megatron g operator: the
// partial outputs of the attention and MLP output projections are summed)
// and two backward (the f operator: the gradient with respect to the input of
// the column-parallel layers is summed). The encoder–decoder's decoder
// blocks have three sub-layers (self-attention, cross-attention, MLP), so
// three each way, and one more backward all-reduce sums the gradient of the
// encoder output (memory) from every cross-attention's k and v projections.
//
// Every activation outside the sharded regions is therefore the same on all
// ranks (the all-reduce leaves identical sums everywhere), and so is every
// gradient of a replicated parameter: each rank runs the identical
// computation on identical inputs. An optimizer stepping each rank's local
// buffer keeps the replicas identical without any further communication.
//
// Dropout: masks on replicated activations come from the model's seeded
// generator, which every rank draws from in the same order, so they agree
// across ranks. Attention-probability dropout acts on local heads and uses a
// second generator seeded per rank (as Megatron's model-parallel RNG does).
// With dropout the TP run is therefore statistically, not bitwise, the TP=1
// run; without dropout it is the TP=1 run up to float summation order.
//
// Each piece is recorded in its view (model.Shard: the whole shape, the
// split dimension, the blocks), with the whole model's names, so a
// checkpoint can gather pieces by name and reshard them.
package tp
