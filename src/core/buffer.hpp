// Read blocks: fixed-size, reference-counted buffers from a per-worker free list.
//
// A read lands in a Block handed out by alloc_cb. Forwarding takes a reference
// on the block and hands slices of it to uv_write (no copy); the block goes
// back to its pool when the last reference drops. A pool belongs to exactly
// one worker thread: nothing here is atomic and nothing may cross threads.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice {

inline constexpr std::size_t kBlockBytes = 16 * 1024;  // one allocation, header included

class BlockPool;

struct Block {
  BlockPool* pool;
  Block* next_free;
  std::uint32_t refs;
  std::uint32_t reserved;
  char data[kBlockBytes - 24];

  static constexpr std::size_t kCapacity = kBlockBytes - 24;
  // Recovers the block from a pointer to its data (uv_buf_t::base in read_cb).
  static Block* from_data(char* base) noexcept {
    return reinterpret_cast<Block*>(base - offsetof(Block, data));
  }
  void ref() noexcept { ++refs; }
  inline void unref() noexcept;
};
static_assert(sizeof(Block) == kBlockBytes);

class BlockPool {
 public:
  explicit BlockPool(std::size_t max_free = 256) : max_free_(max_free) {}
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // A block with one reference, owned by the caller. Inline, like
  // recycle(): both run for every read.
  Block* get() {
    Block* b = free_;
    if (b == nullptr) return get_new();
    free_ = b->next_free;
    --free_count_;
    b->next_free = nullptr;
    b->refs = 1;
    ++in_use_;
    return b;
  }
  // Called when the last reference drops.
  void recycle(Block* b) noexcept {
    if (free_count_ >= max_free_) {
      release(b);
      return;
    }
    --in_use_;
    b->next_free = free_;
    free_ = b;
    ++free_count_;
  }

  std::size_t in_use() const noexcept { return in_use_; }
  std::size_t free_count() const noexcept { return free_count_; }

 private:
  Block* get_new();               // the free list is empty
  void release(Block* b) noexcept;  // the free list is full
  Block* free_ = nullptr;
  std::size_t free_count_ = 0;
  std::size_t in_use_ = 0;
  std::size_t max_free_;
};

inline void Block::unref() noexcept {
  if (--refs == 0) pool->recycle(this);
}

// Move-only holder of one block reference.
class BlockRef {
 public:
  BlockRef() = default;
  explicit BlockRef(Block* b) noexcept : b_(b) {}  // adopts an existing reference
  BlockRef(BlockRef&& o) noexcept : b_(o.b_) { o.b_ = nullptr; }
  BlockRef& operator=(BlockRef&& o) noexcept {
    if (this != &o) { reset(); b_ = o.b_; o.b_ = nullptr; }
    return *this;
  }
  BlockRef(const BlockRef&) = delete;
  BlockRef& operator=(const BlockRef&) = delete;
  ~BlockRef() { reset(); }

  static BlockRef share(Block* b) noexcept { b->ref(); return BlockRef(b); }
  void reset() noexcept { if (b_) { b_->unref(); b_ = nullptr; } }
  Block* get() const noexcept { return b_; }
  explicit operator bool() const noexcept { return b_ != nullptr; }

 private:
  Block* b_ = nullptr;
};

}  // namespace sluice
