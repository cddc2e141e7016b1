// diffcl's whole public API in one include: `#include <diffcl/diffcl.h>`, link diffcl::diffcl
// (CMake, find_package(diffcl)) or `pkg-config --cflags --libs diffcl`. samples/train_spiral.c is
// a complete program. Every function returns a dcl_status; dcl_last_error() says what failed.
#ifndef DIFFCL_DIFFCL_H
#define DIFFCL_DIFFCL_H

#include "diffcl/version.h" // DIFFCL_VERSION_*, dcl_version

#include "diffcl/log.h"    // levels and the log callback
#include "diffcl/status.h" // dcl_status, dcl_last_error

#include "diffcl/arena.h"  // parameter arenas with named views
#include "diffcl/device.h" // devices and buffers
#include "diffcl/ops.h"    // device ops
#include "diffcl/rng.h"    // Philox random numbers

#include "diffcl/sample.h"   // samplers
#include "diffcl/schedule.h" // forward processes and predictions

#include "diffcl/mlp.h"   // the MLP denoiser
#include "diffcl/model.h" // a network with its EMA weights and configuration, checkpoints
#include "diffcl/net.h"   // either network behind one interface
#include "diffcl/train.h" // the training loop
#include "diffcl/unet.h"  // the U-Net denoiser

#include "diffcl/classifier.h" // the image classifier of sample metrics

#include "diffcl/data.h"        // datasets
#include "diffcl/eval.h"        // distribution distances
#include "diffcl/image.h"       // sample grids
#include "diffcl/plot.h"        // scatter, trajectory and curve plots
#include "diffcl/safetensors.h" // safetensors files

#endif
