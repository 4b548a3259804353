#include "../check.h"
#include "tinyfl/cursor.h"
#include "tinyfl/status.h"

using namespace tinyfl;

TINYFL_TEST(status_names_are_distinct) {
  CHECK(strcmp(status_name(Status::Ok), "ok") == 0);
  for (int a = 0; a <= static_cast<int>(Status::Timeout); ++a)
    for (int b = a + 1; b <= static_cast<int>(Status::Timeout); ++b)
      CHECK(strcmp(status_name(static_cast<Status>(a)), status_name(static_cast<Status>(b))) != 0);
}

TINYFL_TEST(reader_latches_truncation) {
  const uint8_t data[3] = {1, 2, 3};
  Reader r(data, sizeof data);
  CHECK_EQ(r.u16(), 0x0201);
  CHECK_EQ(r.u32(), 0);
  CHECK(r.status() == Status::Truncated);
  CHECK_EQ(r.u8(), 0);  // stays failed even though one byte is left
  CHECK(r.status() == Status::Truncated);
}

TINYFL_TEST(writer_size_only_pass_counts) {
  Writer sizing(nullptr, 0);
  sizing.u8(1);
  sizing.u32(2);
  sizing.f32(1.5f);
  CHECK(sizing.ok());
  CHECK_EQ(sizing.size(), 9);
  uint8_t buf[8];
  Writer w(buf, sizeof buf);
  w.u8(1);
  w.u32(2);
  w.f32(1.5f);
  CHECK(w.status() == Status::BufferFull);
}

int main() { return tinyfl_test::run_all(); }
