/* Embedding Terrarium in C: the same as host.cc through the C API.
 *
 *   build/examples/embed-c [examples/embed/plugin.py] */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "terrarium.h"

#ifndef EXAMPLE_PLUGIN
#define EXAMPLE_PLUGIN "examples/embed/plugin.py"
#endif

/* JSON: the payload is a JSON list of names; answer with a JSON object. */
static int prices(void* user_data, const uint8_t* payload, size_t length,
                  terrarium_host_result* result) {
  static const struct {
    const char* name;
    const char* price;
  } table[] = {{"apple", "0.5"}, {"bread", "2.25"}, {"tea", "4.0"}};
  char out[256] = "{";
  (void)user_data;
  for (size_t i = 0; i < sizeof table / sizeof table[0]; ++i) {
    char quoted[32];
    snprintf(quoted, sizeof quoted, "\"%s\"", table[i].name);
    if (memmem(payload, length, quoted, strlen(quoted))) {
      if (strlen(out) > 1) strcat(out, ",");
      strcat(out, quoted);
      strcat(out, ":");
      strcat(out, table[i].price);
    }
  }
  strcat(out, "}");
  terrarium_host_result_set(result, out, strlen(out));
  return 0;
}

/* Bytes: an 8-byte FNV-1a signature; counts its calls in user_data. */
static int sign(void* user_data, const uint8_t* payload, size_t length,
                terrarium_host_result* result) {
  uint64_t hash = 1469598103934665603ULL;
  uint8_t signature[8];
  ++*(int*)user_data;
  for (size_t i = 0; i < length; ++i) hash = (hash ^ payload[i]) * 1099511628211ULL;
  for (int i = 0; i < 8; ++i) signature[i] = (uint8_t)(hash >> (56 - 8 * i));
  terrarium_host_result_set(result, signature, sizeof signature);
  return 0;
}

static int check(terrarium_status status, const char* what) {
  if (status == TERRARIUM_OK) return 0;
  fprintf(stderr, "%s: %s: %s\n%s", what, terrarium_status_name(status), terrarium_last_error(),
          terrarium_last_error_details());
  return 1;
}

int main(int argc, char** argv) {
  const char* plugin = argc > 1 ? argv[1] : EXAMPLE_PLUGIN;
  terrarium_runtime* runtime = NULL;
  terrarium_sandbox* sandbox = NULL;
  int signatures = 0;
  uint8_t* out = NULL;
  size_t out_len = 0;
  if (check(terrarium_runtime_new(&runtime), "runtime")) return 1;
  if (check(terrarium_sandbox_new(runtime, NULL, &sandbox), "sandbox")) return 1;
  if (check(terrarium_sandbox_define(sandbox, "prices", prices, NULL, TERRARIUM_JSON), "define") ||
      check(terrarium_sandbox_define(sandbox, "sign", sign, &signatures, TERRARIUM_BYTES),
            "define") ||
      check(terrarium_sandbox_exec_file(sandbox, plugin), "exec_file"))
    return 1;

  const char* order = "{\"customer\":\"ada\",\"items\":{\"apple\":4,\"tea\":1}}";
  if (check(terrarium_sandbox_call(sandbox, "quote", order, strlen(order), TERRARIUM_JSON, &out,
                                   &out_len),
            "call quote"))
    return 1;
  printf("quote: %s (sign called %d time)\n", (const char*)out, signatures);
  terrarium_free(out);

  terrarium_status status =
      terrarium_sandbox_call(sandbox, "fail", "null", 4, TERRARIUM_JSON, &out, &out_len);
  printf("fail: %s: %s\n", terrarium_status_name(status), terrarium_last_error());
  terrarium_sandbox_free(sandbox);
  terrarium_runtime_free(runtime);
  return status == TERRARIUM_ERROR_GUEST ? 0 : 1;
}
