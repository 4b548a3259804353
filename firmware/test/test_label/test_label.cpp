// The operator's labels (tinyfl/label.h) against the golden LABEL vectors (testvectors/labels/,
// written by tools/gen_testvectors.py): every valid frame decodes to the fields the Python side
// wrote, every invalid one is refused with the status its .reason names, a changed topic or byte
// fails the tag; then what a node accepts (freshness, classes) and the schedule's clock.
#include "../check.h"
#include "../golden.h"
#include "tinyfl/label.h"

using namespace tinyfl;
using namespace golden;

namespace {

uint8_t g_frame[kMaxFile];
uint8_t g_expect[kMaxFile];
Text g_text;

void label_text(Text& t, const LabelView& v) {
  t.add("type=label\nround_id=%u\nseq=%llu\nn=%u\nstarts=", v.round_id, static_cast<unsigned long long>(v.seq), v.n);
  for (uint8_t i = 0; i < v.n; ++i) t.add(i ? ",%u" : "%u", v.intervals[i].start_ms);
  t.add("\ndurations=");
  for (uint8_t i = 0; i < v.n; ++i) t.add(i ? ",%u" : "%u", v.intervals[i].duration_ms);
  t.add("\nlabels=");
  for (uint8_t i = 0; i < v.n; ++i) t.add(i ? ",%d" : "%d", v.intervals[i].label);
  t.add("\n");
}

// The golden "label" frame (tagged, round 1733140000, seq 1733140123456, labels 2, -1, 0) and the
// auth it was signed with.
long load_signed(AuthFile* af) {
  const long n = load("labels", "label", ".bin", g_frame, sizeof g_frame);
  CHECK(n > 0);
  CHECK(load_auth("labels", "label", af));
  return n;
}

constexpr uint32_t kRound = 1733140000u;
constexpr uint64_t kSeq = 1733140123456ull;

}  // namespace

TINYFL_TEST(golden_labels_decode_to_their_fields) {
  int tagged = 0;
  const int files = for_each_golden("labels", g_frame, sizeof g_frame, [&](const char* name, const char* stem, size_t n,
                                                                          const FrameAuth* auth) {
    tagged += auth != nullptr;
    LabelView v;
    // a node with the other kind of authentication refuses it
    static const uint8_t kOtherKey[kFrameKeyLen] = {1};
    static const FrameAuth kOther{kOtherKey, "t/nodes/x/label", 15};
    CHECK(decode_label_frame(g_frame, n, auth == nullptr ? &kOther : nullptr, &v) ==
          (auth == nullptr ? Status::Unauthenticated : Status::NoKey));
    const Status s = decode_label_frame(g_frame, n, auth, &v);
    if (s != Status::Ok) printf("%s: %s\n", name, status_name(s));
    CHECK(s == Status::Ok);
    g_text.len = 0;
    label_text(g_text, v);
    check_text(name, g_text, g_expect, load("labels", stem, ".fields.txt", g_expect, sizeof g_expect));
  });
  CHECK(files >= 5);
  CHECK(tagged >= 3);
}

TINYFL_TEST(invalid_labels_rejected_with_their_reason) {
  const int n = check_rejections("labels/invalid", g_frame, sizeof g_frame, [](const char*, size_t len) {
    LabelView v;
    return decode_label_frame(g_frame, len, nullptr, &v);
  });
  CHECK(n >= 10);
}

TINYFL_TEST(another_frame_type_is_bad_type) {
  const long n = load("frames", "hello", ".bin", g_frame, sizeof g_frame);
  CHECK(n > 0);
  LabelView v;
  CHECK(decode_label_frame(g_frame, static_cast<size_t>(n), nullptr, &v) == Status::BadType);
}

TINYFL_TEST(a_changed_topic_byte_or_tag_fails_the_tag) {
  static AuthFile af;
  const long n = load_signed(&af);
  LabelView v;
  CHECK(decode_label_frame(g_frame, static_cast<size_t>(n), &af.auth, &v) == Status::Ok);
  // another node's label topic: the frame cannot be moved to another node
  static char other[256];
  snprintf(other, sizeof other, "%s", af.topic);
  char* id = strstr(other, "node-01");
  CHECK(id != nullptr);
  if (id != nullptr) id[6] = '2';
  const FrameAuth moved{af.key, other, strlen(other)};
  CHECK(decode_label_frame(g_frame, static_cast<size_t>(n), &moved, &v) == Status::BadTag);
  for (long i = 6; i < n; ++i) {  // every byte after the header, the tag included
    g_frame[i] ^= 0x01;
    CHECK(decode_label_frame(g_frame, static_cast<size_t>(n), &af.auth, &v) == Status::BadTag);
    g_frame[i] ^= 0x01;
  }
  for (long cut = 0; cut < n; ++cut) {
    const Status s = decode_label_frame(g_frame, static_cast<size_t>(cut), &af.auth, &v);
    CHECK(s == Status::Truncated || s == Status::BadTag);
  }
}

TINYFL_TEST(a_node_refuses_older_rounds_and_sequences) {
  static AuthFile af;
  const size_t n = static_cast<size_t>(load_signed(&af));
  LabelView v;
  CHECK(check_label(g_frame, n, &af.auth, 0, 0, 3, &v) == Status::Ok);  // a fresh node
  CHECK(check_label(g_frame, n, &af.auth, kRound, kSeq - 1, 3, &v) == Status::Ok);  // same round
  CHECK(check_label(g_frame, n, &af.auth, kRound + 1, 0, 3, &v) == Status::StaleRound);  // a newer round
  CHECK_EQ(v.round_id, kRound);  // the fields stay readable for the refusal's log line
  CHECK(check_label(g_frame, n, &af.auth, 0, kSeq, 3, &v) == Status::StaleRound);  // a replay
  CHECK(check_label(g_frame, n, &af.auth, 0, kSeq + 1, 3, &v) == Status::StaleRound);
  // label 2 is not a class of a 2-class node; -1 (no label) is fine for any
  CHECK(check_label(g_frame, n, &af.auth, 0, 0, 2, &v) == Status::BadValue);
  CHECK(check_label(g_frame, n, nullptr, 0, 0, 3, &v) == Status::NoKey);
}

TINYFL_TEST(the_schedule_gives_each_interval_its_label) {
  static AuthFile af;
  const size_t n = static_cast<size_t>(load_signed(&af));
  LabelView v;
  CHECK(check_label(g_frame, n, &af.auth, 0, 0, 3, &v) == Status::Ok);
  // intervals (0, 5000, 2), (5000, 2500, -1), (10000, 60000, 0); received near the clock's wrap
  LabelSchedule s;
  CHECK_EQ(s.label_at(123), kNoLabel);
  CHECK(s.ended(123));
  const uint32_t t0 = 0xFFFFF000u;
  s.set(v, t0);
  CHECK_EQ(s.size(), 3);
  CHECK_EQ(s.label_at(t0), 2);
  CHECK_EQ(s.label_at(t0 + 4999u), 2);
  CHECK_EQ(s.label_at(t0 + 5000u), kNoLabel);  // the interval of "no label"
  CHECK_EQ(s.label_at(t0 + 7499u), kNoLabel);
  CHECK_EQ(s.label_at(t0 + 9999u), kNoLabel);  // the gap
  CHECK_EQ(s.label_at(t0 + 10000u), 0);          // past the wrap of millis()
  CHECK_EQ(s.label_at(t0 + 69999u), 0);
  CHECK(!s.ended(t0 + 69999u));
  CHECK_EQ(s.label_at(t0 + 70000u), kNoLabel);
  CHECK(s.ended(t0 + 70000u));
  CHECK_EQ(s.label_at(t0 - 1u), kNoLabel);  // before receipt: 2^32 - 1 ms later, past every interval
  s.clear();
  CHECK_EQ(s.label_at(t0), kNoLabel);
}

TINYFL_TEST(an_empty_schedule_clears_the_labels) {
  const long n = load("labels", "label_clear", ".bin", g_frame, sizeof g_frame);
  static AuthFile af;
  CHECK(load_auth("labels", "label_clear", &af));
  LabelView v;
  CHECK(check_label(g_frame, static_cast<size_t>(n), &af.auth, 0, kSeq, 3, &v) == Status::Ok);
  CHECK_EQ(v.n, 0);
  LabelSchedule s;
  LabelView one{};
  one.n = 1;
  one.intervals[0] = LabelInterval{0, 1000, 1};
  s.set(one, 0);
  CHECK_EQ(s.label_at(10), 1);
  s.set(v, 20);
  CHECK_EQ(s.label_at(30), kNoLabel);
  CHECK(s.ended(30));
}

int main() { return tinyfl_test::run_all(); }
