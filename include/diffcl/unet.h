// The U-Net denoiser for images, DDPM's U-Net (Ho et al. 2020, https://arxiv.org/abs/2006.11239):
// residual blocks with GroupNorm, SiLU, 3×3 convolutions and the time (and class) embedding,
// `res_blocks` blocks per resolution, self-attention blocks at chosen resolutions, skip
// connections. Without attention and with one block per level it is the small Fashion-MNIST
// network whose parameter names, order and initial values earlier checkpoints hold.
// Parameters live in one arena under PyTorch-style dotted names; forward saves what backward needs.
//
// Dimension legend: N batch; C, H, W the images' channels, height and width; R = H·W; E the
// sinusoidal embedding size; T = 4·base the time-embedding width; L levels; B res_blocks; ch_l =
// base·mult[l] the channels at level l (resolution H/2^l × W/2^l); K classes.
//
// The network (Linear is y = x Wᵀ + b with W (out, in); Conv2d is PyTorch's, zero padding k/2):
//   temb (N, T) = Linear(T, T)(SiLU(Linear(E, T)(sinusoid(t))))          "time_mlp.0", "time_mlp.2"
//   with classes: temb += class_emb[label] (K + 1 rows; row K the null class) "class_emb"
//   h = Conv3×3(C → base)(x)                                               "conv_in"
//   down, l = 0..L−1: for j = 0..B−1: h = ResBlock(→ ch_l)(h)              "down.{l}.res{j}"
//                       [and h = AttnBlock(h) when level l has attention]    "down.{l}.attn{j}"
//     skip_l = h; except at l = L−1: h = Conv3×3 stride 2 (ch_l → ch_l)(h)  "down.{l}.downsample"
//   middle: h = ResBlock(ch_{L−1} → ch_{L−1})(h)                           "mid.res"
//     and, when level L−1 has attention, h = ResBlock(AttnBlock(h)) as DDPM "mid.attn", "mid.res1"
//   up, l = L−1..0: h = ResBlock(→ ch_l)(concat_channels(h, skip_l))        "up.{l}.res"
//                   [AttnBlock], then for j = 1..B−1 ResBlock(ch_l → ch_l)  "up.{l}.attn{j}",
//                   [AttnBlock] each                                       "up.{l}.res{j}"
//     except at l = 0: h = Conv3×3 (ch_l → ch_l)(upsample2x_nearest(h))    "up.{l}.upsample"
//   out = Conv3×3(ch_0 → C)(SiLU(GroupNorm(h)))                            "norm_out", "conv_out"
// Block j = 0 has no number in its name ("down.0.res", "down.0.attn"), so the network with one
// block per level and no attention keeps the names of the first version.
// ResBlock(cin → cout) at one resolution, with e = SiLU(temb) shared by all blocks:
//   a = Conv3×3(cin → cout)(SiLU(GroupNorm(x))) + Linear(T, cout)(e)[n, c]  "norm1", "conv1", "emb"
//   y = Conv3×3(cout → cout)(SiLU(GroupNorm(a))) + skip(x)                 "norm2", "conv2"
//   skip = identity when cin = cout, else Conv1×1(cin → cout)              "skip"
// AttnBlock (c channels, `heads` heads of d = c/heads channels, over the R positions):
//   y = x + Conv1×1(c → c)(Attention(Conv1×1(c → 3c)(GroupNorm(x))))      "norm", "qkv", "proj"
//   with the 3c channels [q | k | v] and each head's softmax(q kᵀ/√d) v (dcl_attention_forward,
//   diffcl/ops.h); forward saves the normalised input, qkv, the attention output and the
//   softmax's log-sum-exp per row (N, heads, R), from which backward recomputes the weights: no
//   R×R matrix is stored.
// GroupNorm has `groups` groups and eps 1e-5 (PyTorch's default).
//
// Parameter names, in arena order: "time_mlp.0.weight" (T, E), "time_mlp.0.bias" (T),
// "time_mlp.2.weight" (T, T), "time_mlp.2.bias", ["class_emb.weight" (K + 1, T)],
// "conv_in.weight" (base, C, 3, 3), "conv_in.bias"; for l = 0..L−1: for each block
// "down.{l}.res{j}.{norm1,conv1,emb,norm2,conv2[,skip]}.{weight,bias}" [then
// "down.{l}.attn{j}.{norm,qkv,proj}.{weight,bias}"], and "down.{l}.downsample.{weight,bias}";
// "mid.res.*" ["mid.attn.*", "mid.res1.*"]; for l = L−1..0: the up blocks likewise and
// "up.{l}.upsample.{weight,bias}"; "norm_out.{weight,bias}", "conv_out.{weight,bias}". Shapes are
// PyTorch's: conv weight (Co, Ci, k, k), linear (out, in), norm (C), embedding (K + 1, T), biases
// (out).
//
// Initialisation, from Philox (seed, DCL_RNG_INIT, step = view index) so that every device starts
// from bitwise equal weights: PyTorch's defaults (Conv2d and Linear weight and bias
// U(−1/√fan_in, 1/√fan_in), fan_in = Ci·k·k or in; GroupNorm weight 1, bias 0; Embedding N(0, 1),
// drawn on the host by dcl_rng_normal_at because device normals may differ in the last bits),
// except conv_out and every attention block's proj, whose weight and bias start at zero (as in
// DDPM/ADM implementations): the untrained network predicts 0 and every attention block starts as
// the identity, and the first steps train the head before the body.
//
// Memory: on OpenCL a convolution unfolds its input with im2col into one shared column buffer
// (the CPU reference's conv2d ops unfold one sample at a time into their own scratch). Batches
// whose columns would exceed DCL_UNET_COL_BUDGET elements (default 2^24, 64 MiB; the environment
// variable DIFFCL_UNET_COL_BUDGET overrides it at dcl_unet_init) are convolved in chunks of
// samples. Backward recomputes the columns and the SiLU outputs instead of saving them.
// dcl_unet_memory tells what a configuration and batch need before anything is allocated.
#ifndef DIFFCL_UNET_H
#define DIFFCL_UNET_H

#include <stddef.h>
#include <stdint.h>

#include "diffcl/arena.h"
#include "diffcl/device.h"

#define DCL_UNET_MAX_LEVELS 5     // 64×64 → 4×4
#define DCL_UNET_MAX_RES_BLOCKS 4 // ResBlocks per level
#define DCL_UNET_COL_BUDGET ((size_t)1 << 24)

typedef struct dcl_unet_config {
    int channels, height, width; // C, H, W of the images; H and W divisible by 2^(levels−1)
    int base;                    // channels at full resolution (default 16)
    int levels;                  // resolutions, 1..DCL_UNET_MAX_LEVELS (default 3: 28 → 14 → 7)
    int mult[DCL_UNET_MAX_LEVELS]; // channel multiplier per level (default 1, 2, 2)
    int groups;                    // GroupNorm groups (default 8; must divide every ch_l and base)
    int emb_dim;                   // E: sinusoidal time-embedding size, even (default = base)
    int num_classes;               // 0 unconditional; K: a class embedding with K + 1 rows
    int res_blocks; // B: ResBlocks per level, 1..DCL_UNET_MAX_RES_BLOCKS (default 1; 0 means 1)
    unsigned attn;  // bit l set: attention blocks at level l, resolution H/2^l (default 0: none)
    int heads;      // attention heads (default 1; 0 means 1); divides every attention level's ch_l
} dcl_unet_config;

typedef struct dcl_unet dcl_unet;

// The defaults above for C×H×W images (unconditional).
void dcl_unet_config_default(dcl_unet_config *c, int C, int H, int W);
// Allocates parameters (initialised as above from `seed`), gradients (zero), and activations and
// scratch for batches up to max_batch.
dcl_status dcl_unet_init(dcl_unet **out, dcl_device *dev, const dcl_unet_config *cfg, uint64_t seed,
                         size_t max_batch);
void dcl_unet_free(dcl_unet *u);
const dcl_unet_config *dcl_unet_get_config(const dcl_unet *u);
dcl_arena *dcl_unet_params(dcl_unet *u); // the weights (training updates these; EMA copies them)
dcl_arena *dcl_unet_grads(dcl_unet *u);  // same layout as params
// Shape of parameter view i in PyTorch's convention into shape[]; returns its number of dimensions
// (1, 2 or 4), or 0 when i is not a view.
int dcl_unet_tensor_shape(const dcl_unet *u, int i, uint64_t shape[4]);
// Bytes of device memory the model holds: parameters, gradients, saved activations and scratch
// for max_batch (everything dcl_unet_init allocated).
size_t dcl_unet_device_bytes(const dcl_unet *u);

// out (N, C, H, W) = ε̂(x (N, C, H, W), t (N), labels (N)). labels holds uint32 bits in 0..K (K
// the null class); a zero dcl_ptr (buf NULL) means every sample has the null class; ignored when
// num_classes is 0. params NULL: the model's own weights, and the activations are saved for
// dcl_unet_backward; non-NULL: another arena of the same layout on the same device (the EMA
// weights), forward only: a dcl_unet_backward must then follow a fresh own forward. N <= max_batch;
// out may be x (x and labels are copied first).
dcl_status dcl_unet_forward(dcl_unet *u, const dcl_arena *params, dcl_ptr out, dcl_ptr x, dcl_ptr t,
                            dcl_ptr labels, size_t N);
// Accumulates (+=) the parameter gradients of Σ dout ⊙ out for the last own forward into
// dcl_unet_grads; N must be that forward's batch. dout (N, C, H, W) is only read.
dcl_status dcl_unet_backward(dcl_unet *u, dcl_ptr dout, size_t N);
// Forward FLOPs per image: 2 × the multiply-adds of every convolution (the attention blocks' 1×1
// ones included) and Linear layer, and of each attention head's two R×R×d products q kᵀ and P v
// (4·R²·c per block of c channels); GroupNorm, SiLU, softmax and element-wise work not counted.
// 0 for an invalid configuration.
double dcl_unet_flops(const dcl_unet_config *c);
// The number of parameters a U-Net of config c has, without building it (nothing is allocated on a
// device): what a checkpoint reader compares with a file's tensors. DCL_ERR_ARG for a bad config.
dcl_status dcl_unet_param_count(const dcl_unet_config *c, size_t *count);

// Device memory in bytes that training a U-Net of config c at batches up to `batch` takes on dev,
// counted from the config alone (nothing is allocated): what dcl_unet_init allocates plus the
// optimizer's and the trainer's buffers (host/train/trainer.c).
typedef struct dcl_unet_memory {
    uint64_t params;  // the weights; the gradients, the EMA weights and Adam's two moments are
                      // this size each
    uint64_t saved;   // the activations forward saves for backward (one buffer)
    uint64_t work;    // scratch and activation gradients (one buffer)
    uint64_t columns; // OpenCL devices: im2col columns and GEMM output (one buffer), and about
                      // the backend's padded planes of same convolutions (host/README.md)
    uint64_t batch;   // the trainer's (N, C, H, W) buffers: x0, noise, x_t, target, prediction,
                      // its gradient, the difference
    uint64_t total;   // 5·params + saved + work + columns + batch
    uint64_t largest; // the largest single buffer
} dcl_unet_memory;
// DCL_ERR_ARG for a bad config. dev NULL: the CPU reference.
dcl_status dcl_unet_memory_bytes(const dcl_unet_config *c, const dcl_device *dev, size_t batch,
                                 dcl_unet_memory *m);
// DCL_OK when training at `batch` fits dev: the total within its global memory, every buffer
// within its largest allocation and the kernels' 2^32 elements. Otherwise DCL_ERR_ARG with a
// message giving both figures and the largest batch that fits ("use a batch of at most N"), or
// saying that no batch does; *fits (may be NULL) is that batch (0 when none).
dcl_status dcl_unet_check_memory(const dcl_unet_config *c, const dcl_device *dev, size_t batch,
                                 size_t *fits);
// The resolutions of config c that can take attention, as heights H/2^l for l = 0..levels−1,
// written as "28, 14, 7" into buf: for messages.
void dcl_unet_attn_heights(const dcl_unet_config *c, char *buf, size_t size);

#endif
