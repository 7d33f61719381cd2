#pragma once
// What recipes, evaluation and the trainer need to know of a backbone beyond the Backbone
// concept (core/concepts.hpp): its config to and from checkpoint metadata, so that any
// micle checkpoint says how to rebuild its model, and the image channels a config reads.
// Specialise backbone_traits next to a new backbone (resnet's is in models/resnet.hpp);
// train::pretrain, train::finetune and train::score_checkpoint then take it as their
// first template argument, and nothing else needs to change.
//
//   template <> struct backbone_traits<my_net> {
//       using config = my_net_config;
//       static config defaults(std::int64_t in_channels);             // the recipes' starting point
//       static config from_metadata(const metadata& m, config base);  // keys m lacks keep base's values
//       static metadata to_metadata(const config& c);                 // "arch" and the rest, as strings
//       static std::int64_t in_channels(const config& c);
//   };
#include <cstdint>
#include <map>
#include <string>

namespace micle::models {

using metadata = std::map<std::string, std::string>;

/// Undefined for a backbone that has not said how it is described (see above).
template <template <class> class M>
struct backbone_traits;

template <template <class> class M>
concept described_backbone = requires(const metadata& m, const typename backbone_traits<M>::config& c) {
    { backbone_traits<M>::defaults(std::int64_t{3}) } -> std::same_as<typename backbone_traits<M>::config>;
    { backbone_traits<M>::from_metadata(m, c) } -> std::same_as<typename backbone_traits<M>::config>;
    { backbone_traits<M>::to_metadata(c) } -> std::same_as<metadata>;
    { backbone_traits<M>::in_channels(c) } -> std::convertible_to<std::int64_t>;
};

/// A checkpoint's architecture metadata: the backbone's keys and the image size it was
/// trained at.
template <template <class> class M>
    requires described_backbone<M>
metadata checkpoint_metadata(const typename backbone_traits<M>::config& c, std::int64_t image_size) {
    auto m = backbone_traits<M>::to_metadata(c);
    m["image-size"] = std::to_string(image_size);
    return m;
}

}  // namespace micle::models
