# model/llama: the decoder against a naive double-precision reference on tiny random models
# written by the test (F32, F16, BF16; GQA, biases, tied embeddings, RoPE scaling), the linear
# kernels, beams over shared cache rows, the config reader.
gs_check_test(test_model_llama SUITE model_llama_suite SOURCES test_model_llama.c
  MODULES model common TIMEOUT 120)
