// dockerapi/tar_writer.hpp: a minimal ustar archive writer, enough to build a
// Docker build context (Dockerfile + a static binary) or a put_archive body in
// memory, so tests and tools build FROM scratch images and copy files into
// containers without the docker CLI. Public: build_image and put_archive
// take what it writes.
#pragma once

#include <string>
#include <string_view>

namespace dockscaler::dockerapi {

class tar_writer {
 public:
  // name: relative path, at most 100 bytes (or 255 with a '/' to split on).
  // Throws error(invalid_argument) for a name that does not fit.
  void add_file(std::string_view name, std::string_view content, unsigned mode = 0644);
  void add_directory(std::string_view name, unsigned mode = 0755);
  // Appends the two zero blocks that end the archive and returns it.
  std::string finish();

 private:
  void header(std::string_view name, char type, unsigned mode, std::size_t size);
  std::string out_;
};

}  // namespace dockscaler::dockerapi
