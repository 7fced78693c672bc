// Tests for src/core/buffer and the OutBatch half of src/net/transport: the
// block pool's counts and free-list cap, BlockRef ownership, and that a batch
// takes exactly one block reference per segment, merges what can share an
// iovec, gives every reference back on clear(), and yields its bytes in order.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/buffer.hpp"
#include "net/transport.hpp"

namespace {

using sluice::Block;
using sluice::BlockPool;
using sluice::BlockRef;
using sluice::net::OutBatch;

std::string joined(const OutBatch& batch, std::size_t* segments = nullptr) {
  std::vector<uv_buf_t> bufs;
  batch.to_bufs(bufs);
  if (segments) *segments = bufs.size();
  std::string out;
  for (const uv_buf_t& b : bufs) {
    REQUIRE(b.len > 0);
    out.append(b.base, b.len);
  }
  return out;
}

void fill(Block* b, const char* text) { std::memcpy(b->data, text, std::strlen(text)); }

}  // namespace

TEST_CASE("buffer: the pool counts blocks in use and reuses freed ones", "[buffer]") {
  BlockPool pool;
  CHECK(pool.in_use() == 0);
  CHECK(pool.free_count() == 0);
  Block* a = pool.get();
  REQUIRE(a != nullptr);
  CHECK(a->pool == &pool);
  CHECK(a->refs == 1);
  CHECK(pool.in_use() == 1);
  Block* b = pool.get();
  CHECK(b != a);
  CHECK(pool.in_use() == 2);

  a->unref();
  CHECK(pool.in_use() == 1);
  CHECK(pool.free_count() == 1);
  Block* c = pool.get();
  CHECK(c == a);  // from the free list, not a new allocation
  CHECK(c->refs == 1);
  CHECK(pool.free_count() == 0);
  CHECK(pool.in_use() == 2);

  c->ref();
  c->unref();
  CHECK(pool.in_use() == 2);  // one reference is still held
  c->unref();
  b->unref();
  CHECK(pool.in_use() == 0);
  CHECK(pool.free_count() == 2);
}

TEST_CASE("buffer: from_data recovers the block from its data pointer", "[buffer]") {
  BlockPool pool;
  Block* b = pool.get();
  CHECK(Block::from_data(b->data) == b);
  CHECK(Block::kCapacity == sluice::kBlockBytes - 24);
  CHECK(static_cast<std::size_t>(b->data - reinterpret_cast<char*>(b)) + Block::kCapacity ==
        sluice::kBlockBytes);
  b->unref();
}

TEST_CASE("buffer: the free list keeps at most max_free blocks", "[buffer]") {
  BlockPool pool(2);
  std::vector<Block*> blocks;
  for (int i = 0; i < 5; ++i) blocks.push_back(pool.get());
  CHECK(pool.in_use() == 5);
  for (Block* b : blocks) b->unref();
  CHECK(pool.in_use() == 0);
  CHECK(pool.free_count() == 2);

  BlockPool none(0);
  none.get()->unref();
  CHECK(none.free_count() == 0);
  CHECK(none.in_use() == 0);
}

TEST_CASE("buffer: BlockRef adopts, shares, moves and releases exactly once", "[buffer]") {
  BlockPool pool;
  SECTION("adopt and destroy") {
    {
      BlockRef r(pool.get());
      CHECK(static_cast<bool>(r));
      CHECK(r.get()->refs == 1);
      CHECK(pool.in_use() == 1);
    }
    CHECK(pool.in_use() == 0);
  }
  SECTION("share takes another reference") {
    Block* b = pool.get();
    {
      BlockRef s = BlockRef::share(b);
      CHECK(s.get() == b);
      CHECK(b->refs == 2);
    }
    CHECK(b->refs == 1);
    CHECK(pool.in_use() == 1);
    b->unref();
    CHECK(pool.in_use() == 0);
  }
  SECTION("move construction leaves the source empty") {
    BlockRef a(pool.get());
    Block* b = a.get();
    BlockRef moved(std::move(a));
    CHECK_FALSE(static_cast<bool>(a));
    CHECK(a.get() == nullptr);
    CHECK(moved.get() == b);
    CHECK(b->refs == 1);
    moved.reset();
    CHECK(pool.in_use() == 0);
    moved.reset();  // idempotent
    CHECK(pool.in_use() == 0);
  }
  SECTION("move assignment releases what the target held") {
    BlockRef a(pool.get());
    BlockRef b(pool.get());
    Block* kept = a.get();
    CHECK(pool.in_use() == 2);
    b = std::move(a);
    CHECK(pool.in_use() == 1);
    CHECK(b.get() == kept);
    CHECK(kept->refs == 1);
    CHECK_FALSE(static_cast<bool>(a));
  }
  SECTION("self move assignment keeps the reference") {
    BlockRef a(pool.get());
    BlockRef& alias = a;
    a = std::move(alias);
    CHECK(static_cast<bool>(a));
    CHECK(a.get()->refs == 1);
    CHECK(pool.in_use() == 1);
  }
  CHECK(pool.in_use() == 0);
}

TEST_CASE("buffer: OutBatch merges adjacent owned bytes into one segment", "[buffer]") {
  OutBatch batch;
  CHECK(batch.empty());
  batch.append_copy("HTTP/1.1 ");
  batch.append_copy("");
  batch.append_copy("200 OK\r\n");
  std::size_t segs = 0;
  CHECK(joined(batch, &segs) == "HTTP/1.1 200 OK\r\n");
  CHECK(segs == 1);
  CHECK(batch.bytes() == 17);
  CHECK_FALSE(batch.empty());
}

TEST_CASE("buffer: OutBatch merges contiguous slices of one block and refs each segment once", "[buffer]") {
  BlockPool pool;
  Block* b = pool.get();
  fill(b, "0123456789abcdefghij");
  {
    OutBatch batch;
    batch.append_block(b, b->data, 3);
    batch.append_block(b, b->data + 3, 4);  // contiguous: same segment, no new ref
    CHECK(b->refs == 2);
    std::size_t segs = 0;
    CHECK(joined(batch, &segs) == "0123456");
    CHECK(segs == 1);

    batch.append_block(b, b->data + 10, 2);  // a gap: a new segment and a new ref
    CHECK(b->refs == 3);
    batch.append_block(b, b->data + 12, 0);  // nothing: no segment, no ref
    CHECK(b->refs == 3);
    CHECK(joined(batch, &segs) == "0123456ab");
    CHECK(segs == 2);
    CHECK(batch.bytes() == 9);
  }
  CHECK(b->refs == 1);  // the batch's destructor gave its references back
  b->unref();
  CHECK(pool.in_use() == 0);
}

TEST_CASE("buffer: OutBatch interleaves copies and slices in order", "[buffer]") {
  BlockPool pool;
  Block* x = pool.get();
  Block* y = pool.get();
  fill(x, "XXXXXXXX");
  fill(y, "yyyyyyyy");
  OutBatch batch;
  batch.append_copy("5\r\n");
  batch.append_block(x, x->data, 5);
  batch.append_copy("\r\n");
  batch.append_copy("3\r\n");  // merges with "\r\n": both owned and adjacent
  batch.append_block(y, y->data + 2, 3);
  batch.append_block(x, x->data + 5, 1);  // contiguous with an earlier slice, but not the last
  batch.append_copy("\r\n");
  std::size_t segs = 0;
  CHECK(joined(batch, &segs) == "5\r\nXXXXX\r\n3\r\nyyyX\r\n");
  CHECK(segs == 6);
  CHECK(batch.bytes() == 3 + 5 + 5 + 3 + 1 + 2);
  CHECK(x->refs == 3);
  CHECK(y->refs == 2);

  x->unref();
  y->unref();
  CHECK(pool.in_use() == 2);  // the batch still holds both
  batch.clear();
  CHECK(pool.in_use() == 0);
  CHECK(batch.empty());
  CHECK(batch.bytes() == 0);
  CHECK(joined(batch, &segs).empty());
  CHECK(segs == 0);

  // A cleared batch is usable again.
  batch.append_copy("again");
  CHECK(joined(batch) == "again");
}

TEST_CASE("buffer: OutBatch swap exchanges contents and references", "[buffer]") {
  BlockPool pool;
  Block* b = pool.get();
  fill(b, "slice");
  OutBatch a;
  OutBatch other;
  a.append_copy("head:");
  a.append_block(b, b->data, 5);
  other.append_copy("other");
  a.swap(other);
  CHECK(joined(a) == "other");
  CHECK(joined(other) == "head:slice");
  CHECK(other.bytes() == 10);
  CHECK(b->refs == 2);
  b->unref();
  other.clear();
  CHECK(pool.in_use() == 0);
}
