// Internal to the trainer and the model code.
#ifndef DIFFCL_MODEL_IMPL_H
#define DIFFCL_MODEL_IMPL_H

#include "diffcl/model.h"

// dcl_model_save from host copies of the weights and the EMA weights (each in the layout of
// dcl_net_params(m->net)) instead of m's device buffers: the trainer saves its last consistent
// state this way when the device has failed.
dcl_status dcl__model_save_host(const dcl_model *m, const float *weights, const float *ema,
                                const char *path);

// The config as compact JSON, the value of __metadata__["diffcl"] (malloc'd; NULL when out of
// memory): the trainer's checkpoints with training state write it too.
char *dcl__model_config_json(const dcl_model_config *c);

#endif
