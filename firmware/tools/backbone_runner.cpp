// Host tool: runs the node's backbone core (backbone_parse + backbone_run, the same sources the
// firmware compiles) on a firmware model blob and a file of int8 inputs, so tests can compare the
// core with LiteRT on models built at test time (the fleet's images have their models compiled in).
//
//   backbone_runner MODEL.tfmb INPUTS.bin OUT.bin
//
// INPUTS.bin: n inputs of input_len int8 each, back to back; OUT.bin: n embeddings. Prints
// "arena_bytes=N" on success. Exit 2 (with the status name) if the blob is refused, 1 on I/O.
#include <stdio.h>
#include <stdlib.h>

#include <vector>

#include "tinyfl/backbone.h"
#include "tinyfl/status.h"

namespace {

bool read_all(const char* path, std::vector<uint8_t>* out) {
  FILE* f = fopen(path, "rb");
  if (f == nullptr) return false;
  uint8_t buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out->insert(out->end(), buf, buf + n);
  fclose(f);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s MODEL.tfmb INPUTS.bin OUT.bin\n", argv[0]);
    return 1;
  }
  std::vector<uint8_t> blob, inputs;
  if (!read_all(argv[1], &blob) || !read_all(argv[2], &inputs)) {
    fprintf(stderr, "cannot read inputs\n");
    return 1;
  }
  static tinyfl::Backbone model;
  const tinyfl::Status s = tinyfl::backbone_parse(blob.data(), blob.size(), &model);
  if (s != tinyfl::Status::Ok) {
    fprintf(stderr, "backbone_parse: %s\n", tinyfl::status_name(s));
    return 2;
  }
  const size_t in_len = model.input_len();
  if (inputs.size() % in_len != 0) {
    fprintf(stderr, "%zu input bytes are not a multiple of %zu\n", inputs.size(), in_len);
    return 1;
  }
  std::vector<uint8_t> arena(model.arena_bytes + 1);
  std::vector<int8_t> out(inputs.size() / in_len * model.embedding_len);
  for (size_t i = 0; i < inputs.size() / in_len; ++i) {
    const tinyfl::Status r = tinyfl::backbone_run(
        model, reinterpret_cast<const int8_t*>(inputs.data()) + i * in_len, in_len,
        out.data() + i * model.embedding_len, model.embedding_len, arena.data(), model.arena_bytes);
    if (r != tinyfl::Status::Ok) {
      fprintf(stderr, "backbone_run: %s\n", tinyfl::status_name(r));
      return 2;
    }
  }
  FILE* f = fopen(argv[3], "wb");
  if (f == nullptr || fwrite(out.data(), 1, out.size(), f) != out.size()) return 1;
  fclose(f);
  printf("arena_bytes=%zu\n", model.arena_bytes);
  return 0;
}
