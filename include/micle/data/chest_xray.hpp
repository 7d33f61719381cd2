#pragma once
// The public chest X-ray datasets read as they are shipped (DATA SPECs `chexpert:`,
// `mimic-cxr:` and `nih:`, or found by their header): torchxrayvision's readers, plus
// patient and study ids for patient-level splits and MICLe's bags.
//
//   CheXpert       train.csv / valid.csv: Path,Sex,Age,Frontal/Lateral,AP/PA,<14 findings>
//                  with 1.0, 0.0, -1.0 (uncertain) or blank (not mentioned); patient and
//                  study from the path (.../patient00001/study1/view1_frontal.jpg). Paths are
//                  resolved against the CSV's folder or the one above it (they start with
//                  CheXpert-v1.0-small/). valid.csv beside train.csv is the test split.
//   MIMIC-CXR-JPG  a root with mimic-cxr-2.0.0-metadata.csv, -chexpert.csv and -split.csv
//                  (each may be .csv.gz, as PhysioNet ships them) and
//                  files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg. Labels are per study (the CheXpert
//                  labeller's values); a study without a labels row has every label missing.
//                  The split file's train/validate/test are the splits.
//   NIH ChestX-ray14  Data_Entry_2017.csv: Image Index,Finding Labels (|-separated, or
//                  "No Finding"),Follow-up #,Patient ID,...,View Position; images in
//                  images/ (or images_NNN/images/, or beside the CSV). test_list.txt beside
//                  it is the test split (train_val_list.txt the rest).
//
// Where a source has an official test split only, the rest is split by patient, seeded,
// into train and val in the ratio of split_fractions' train to val; without any, the
// seeded patient-level split of open.hpp applies. Views: frontal (CheXpert Frontal; MIMIC
// AP*/PA*; NIH all), lateral (CheXpert Lateral; MIMIC LATERAL, LL, XTABLE LATERAL) or all.
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "micle/data/csv.hpp"
#include "micle/data/labels.hpp"
#include "micle/data/split.hpp"

namespace micle::data {

enum class chest_layout : std::uint8_t { chexpert, mimic_cxr, nih };
enum class view_filter : std::uint8_t { all, frontal, lateral };

inline view_filter parse_view_filter(const std::string& s) {
    if (s == "all") return view_filter::all;
    if (s == "frontal") return view_filter::frontal;
    if (s == "lateral") return view_filter::lateral;
    throw value_error("--views must be frontal, lateral or all, not '" + s + "'");
}

/// How a chest X-ray source is read: labels and their policy, views, and the split of what
/// its official files leave unsplit.
struct chest_options {
    label_policy policy;
    view_filter views = view_filter::all;
    split_fractions fractions;
    std::uint64_t split_seed = 0;
};

/// The largest label or metadata file read (after decompression): a bound, not a guess at
/// a real file (MIMIC-CXR's metadata is about 60 MB).
inline constexpr std::size_t max_table_bytes = std::size_t(1) << 30;

/// A text file whole, gunzipped when it ends in .gz.
inline std::string read_table_file(const std::filesystem::path& path) {
    if (path.extension() != ".gz") {
        std::error_code ec;
        const auto size = std::filesystem::file_size(path, ec);
        check<data_error>(!ec, "cannot read ", path.string(), ": ", ec.message());
        check<data_error>(size <= max_table_bytes, path.string(), ": ", size, " bytes is more than a label file holds (",
                          max_table_bytes, ")");
        std::ifstream in(path, std::ios::binary);
        check<data_error>(bool(in), "cannot open ", path.string());
        std::string s(size, '\0');
        in.read(s.data(), std::streamsize(size));
        check<data_error>(std::size_t(in.gcount()) == size, "cannot read ", path.string());
        return s;
    }
    gzFile f = gzopen(path.c_str(), "rb");
    check<data_error>(f != nullptr, "cannot open ", path.string());
    struct closer {
        gzFile f;
        ~closer() { gzclose(f); }
    } guard{f};
    std::string s;
    char buf[1 << 16];
    for (;;) {
        const int got = gzread(f, buf, sizeof buf);
        if (got < 0) {
            int err = 0;
            const char* msg = gzerror(f, &err);
            throw data_error(micle::detail::cat(path.string(), ": corrupt gzip stream (", msg ? msg : "?", ")"));
        }
        if (got == 0) break;
        check<data_error>(s.size() + std::size_t(got) <= max_table_bytes, path.string(), ": decompresses to more than ",
                          max_table_bytes, " bytes");
        s.append(buf, std::size_t(got));
    }
    return s;
}

/// A CSV table read row by row: its header's columns by name and each row checked to have
/// as many fields, every error naming the file and line.
class csv_table {
public:
    explicit csv_table(const std::filesystem::path& path) : file_(path.string()), in_(read_table_file(path)) {
        std::string line;
        while (header_.empty() && getline_bounded(in_, line, default_max_line_bytes, file_, line_ + 1)) {
            ++line_;
            if (line.find_first_not_of(" \t\r") != std::string::npos) header_ = split_csv_line(line, where());
        }
        check<data_error>(!header_.empty(), file_, ": empty (no header line)");
    }
    const std::vector<std::string>& header() const noexcept { return header_; }
    /// The column named `name`, or -1.
    int find(const std::string& name) const {
        for (std::size_t i = 0; i < header_.size(); ++i)
            if (header_[i] == name) return int(i);
        return -1;
    }
    int column(const std::string& name) const {
        const int c = find(name);
        check<data_error>(c >= 0, file_, ":1: no column '", name, "'");
        return c;
    }
    /// The next non-blank row into `f`; false at the end.
    bool next(std::vector<std::string>& f) {
        std::string line;
        while (getline_bounded(in_, line, default_max_line_bytes, file_, line_ + 1)) {
            ++line_;
            if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
            f = split_csv_line(line, where());
            check<data_error>(f.size() == header_.size(), where(), ": ", f.size(), " fields, the header has ", header_.size());
            return true;
        }
        return false;
    }
    std::string where() const { return file_ + ":" + std::to_string(line_); }
    const std::string& file() const noexcept { return file_; }

private:
    std::string file_;
    std::istringstream in_;
    std::vector<std::string> header_;
    std::size_t line_ = 0;
};

namespace chest_detail {

/// A CheXpert-style value: 1.0, 0.0, -1.0 (uncertain) or blank (missing); integers too.
inline label_state parse_state(const std::string& v, const std::string& label, const std::string& where) {
    if (v.empty()) return label_state::missing;
    if (v == "1.0" || v == "1") return label_state::positive;
    if (v == "0.0" || v == "0") return label_state::negative;
    if (v == "-1.0" || v == "-1") return label_state::uncertain;
    throw data_error(micle::detail::cat(where, ": label '", label, "' has '", v, "' (1.0, 0.0, -1.0 or blank expected)"));
}

/// What the readers build up, then turn into a dataset.
struct builder {
    dataset d;
    std::vector<int> chosen;  // positions in the source's label columns
    label_policy policy;
    std::map<std::string, std::int64_t> patient_ids, study_ids;
    std::shared_ptr<std::vector<std::filesystem::path>> paths = std::make_shared<std::vector<std::filesystem::path>>();
    bool with_studies = true;

    builder(const std::string& source, const std::vector<std::string>& available, const label_policy& p, const char* fallback)
        : policy(p) {
        d.source = source;
        d.task = task_kind::multilabel;
        chosen = choose_labels(p.labels, fallback, available, source);
        for (int c : chosen) d.class_names.push_back(available[std::size_t(c)]);
        d.num_classes = std::int64_t(chosen.size());
    }
    /// One image with the source's states for every available label.
    void add(const std::filesystem::path& image, const std::string& where, const std::string& patient, const std::string& study,
             const std::vector<label_state>& states, const std::string& split) {
        paths->push_back(image);
        d.names.push_back(where + " (" + image.string() + ")");
        d.patients.push_back(patient_ids.emplace(patient, std::int64_t(patient_ids.size())).first->second);
        if (with_studies) d.studies.push_back(study_ids.emplace(patient + "/" + study, std::int64_t(study_ids.size())).first->second);
        for (int c : chosen) {
            d.label_states.push_back(states[std::size_t(c)]);
            d.targets.push_back(apply_policy(states[std::size_t(c)], policy));
        }
        d.splits.push_back(split);
    }
    /// The dataset: rows without an official split are split by patient into train and val
    /// (or, when no row has one, left to open.hpp's seeded split).
    dataset finish(const chest_options& opt, const read_options& read, const std::string& what) {
        check<data_error>(!d.patients.empty(), d.source, ": no images", what);
        if (!with_studies) d.studies.clear();
        const bool any = std::any_of(d.splits.begin(), d.splits.end(), [](const std::string& s) { return !s.empty(); });
        if (!any) {
            d.splits.clear();
        } else if (std::any_of(d.splits.begin(), d.splits.end(), [](const std::string& s) { return s.empty(); })) {
            std::vector<std::int64_t> rest;
            for (std::int64_t i = 0; i < d.size(); ++i)
                if (d.splits[std::size_t(i)].empty()) rest.push_back(i);
            const auto sub = d.subset(rest);  // ids and labels only: patient_split decodes nothing
            const auto parts = patient_split(sub, {opt.fractions.train, opt.fractions.val, 0.0}, opt.split_seed);
            for (auto i : parts.train) d.splits[std::size_t(rest[std::size_t(i)])] = "train";
            for (auto i : parts.val) d.splits[std::size_t(rest[std::size_t(i)])] = "val";
            for (auto i : parts.test) d.splits[std::size_t(rest[std::size_t(i)])] = "train";  // rounding leftovers
        }
        d.decode = [paths = paths, read](std::int64_t i, const decode_plan& plan) {
            return decode_image_source((*paths)[std::size_t(i)], read, plan);
        };
        d.validate();
        return std::move(d);
    }
};

/// A path component that starts with `prefix` and goes on with digits (patient00001,
/// study1), or empty.
inline std::string component(const std::filesystem::path& p, const std::string& prefix) {
    for (const auto& c : p) {
        const std::string s = c.string();
        if (s.size() > prefix.size() && s.rfind(prefix, 0) == 0 &&
            std::all_of(s.begin() + std::ptrdiff_t(prefix.size()), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
            return s;
    }
    return {};
}

inline bool is_file(const std::filesystem::path& p) {
    std::error_code ec;
    return std::filesystem::is_regular_file(p, ec);
}

/// The first of `candidates` that exists as a file, or nothing.
inline std::optional<std::filesystem::path> first_existing(const std::vector<std::filesystem::path>& candidates) {
    for (const auto& c : candidates)
        if (is_file(c)) return c;
    return std::nullopt;
}

/// A spec's file by its name or its .gz, in `dir`.
inline std::optional<std::filesystem::path> table(const std::filesystem::path& dir, const std::string& name) {
    return first_existing({dir / name, dir / (name + ".gz")});
}

inline const std::string& view_name(view_filter v) {
    static const std::string names[3] = {"", " with view frontal", " with view lateral"};
    return names[std::size_t(v)];
}

/// Where CheXpert's relative paths point: `base` / path, or `base` / path without its first
/// part (CheXpert-v1.0-small/ when the CSV sits inside that folder).
struct chexpert_root {
    std::filesystem::path base;
    bool strip_first = false;
    std::filesystem::path resolve(const std::filesystem::path& rel) const {
        if (!strip_first) return base / rel;
        std::filesystem::path out = base;
        for (auto it = std::next(rel.begin()); it != rel.end(); ++it) out /= *it;
        return out;
    }
};

/// One CheXpert CSV into `b`; `split` is its rows' split ("test" for valid.csv, or empty).
/// The root is found from the first row kept and holds for every later one.
inline void read_chexpert_rows(builder& b, const std::filesystem::path& csv, const std::vector<std::string>& labels,
                               const chest_options& opt, const std::string& split, std::optional<chexpert_root>& root) {
    csv_table t(csv);
    const int path_col = t.column("Path"), view_col = t.find("Frontal/Lateral");
    std::vector<int> label_cols;
    for (const auto& l : labels) label_cols.push_back(t.column(l));
    check<data_error>(opt.views == view_filter::all || view_col >= 0, csv.string(), ":1: no column 'Frontal/Lateral' for --views");
    const auto dir = csv.parent_path();
    std::vector<std::string> f;
    std::vector<label_state> states(labels.size());
    while (t.next(f)) {
        const std::string where = t.where();
        const std::filesystem::path rel(f[std::size_t(path_col)]);
        check<data_error>(!rel.empty(), where, ": empty path");
        const auto patient = component(rel, "patient"), study = component(rel, "study");
        check<data_error>(!patient.empty(), where, ": path ", rel.string(), " has no patientNNNNN folder (CheXpert's layout)");
        check<data_error>(!study.empty(), where, ": path ", rel.string(), " has no studyN folder (CheXpert's layout)");
        for (std::size_t k = 0; k < labels.size(); ++k) states[k] = parse_state(f[std::size_t(label_cols[k])], labels[k], where);
        if (opt.views != view_filter::all) {
            const auto& v = f[std::size_t(view_col)];
            check<data_error>(v == "Frontal" || v == "Lateral", where, ": Frontal/Lateral is '", v, "' (Frontal or Lateral expected)");
            if ((v == "Frontal") != (opt.views == view_filter::frontal)) continue;
        }
        if (!root) {
            const chexpert_root tries[3] = {{dir, false}, {dir.parent_path(), false}, {dir, true}};
            for (const auto& r : tries)
                if (!root && is_file(r.resolve(rel))) root = r;
            check<data_error>(root.has_value(), where, ": image ", rel.string(), " is in none of ", tries[0].resolve(rel).string(),
                              ", ", tries[1].resolve(rel).string(), ", ", tries[2].resolve(rel).string());
        }
        const auto image = root->resolve(rel);
        check<data_error>(is_file(image), where, ": image ", image.string(), " does not exist");
        b.add(image, where, patient, study, states, split);
    }
}

/// The NIH images folder map: file name -> path, from images/, images_NNN/images/ and the CSV's folder.
inline std::map<std::string, std::filesystem::path> nih_images(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> dirs{dir / "images"};
    std::error_code ec;
    std::vector<std::filesystem::path> numbered;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec))
        if (e.is_directory(ec) && e.path().filename().string().rfind("images_", 0) == 0) numbered.push_back(e.path() / "images");
    std::sort(numbered.begin(), numbered.end());
    dirs.insert(dirs.end(), numbered.begin(), numbered.end());
    dirs.push_back(dir);
    std::map<std::string, std::filesystem::path> out;
    for (const auto& d : dirs) {
        if (!std::filesystem::is_directory(d, ec)) continue;
        for (const auto& e : std::filesystem::directory_iterator(d, ec))
            if (e.is_regular_file(ec)) out.emplace(e.path().filename().string(), e.path());
    }
    return out;
}

/// The names a split list holds (one image name per line).
inline std::set<std::string> name_list(const std::filesystem::path& p) {
    std::ifstream in(p);
    check<data_error>(bool(in), "cannot open ", p.string());
    std::set<std::string> out;
    std::string line;
    for (std::size_t n = 1; getline_bounded(in, line, default_max_line_bytes, p.string(), n); ++n) {
        const auto b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
        if (b != std::string::npos) out.insert(line.substr(b, e - b + 1));
    }
    return out;
}

}  // namespace chest_detail

/// CheXpert's train.csv or valid.csv (valid.csv beside a train.csv is its test split).
inline dataset read_chexpert(const std::filesystem::path& csv, const chest_options& opt = {}, const read_options& read = {}) {
    std::ifstream head(csv);
    check<data_error>(bool(head), "cannot open ", csv.string());
    std::string line;
    check<data_error>(getline_bounded(head, line, default_max_line_bytes, csv.string(), 1), csv.string(), ": empty (no header line)");
    std::vector<std::string> labels;  // the findings the file has, in its order
    for (const auto& h : split_csv_line(line, csv.string() + ":1"))
        if (std::find(chexpert_findings().begin(), chexpert_findings().end(), h) != chexpert_findings().end()) labels.push_back(h);
    check<data_error>(!labels.empty(), csv.string(), ":1: no CheXpert finding columns (Atelectasis, Cardiomegaly, ...)");
    chest_detail::builder b(csv.string(), labels, opt.policy, "chexpert5");
    std::optional<chest_detail::chexpert_root> root;
    const auto valid = csv.parent_path() / "valid.csv";
    const bool with_valid = csv.filename() == "train.csv" && chest_detail::is_file(valid);
    chest_detail::read_chexpert_rows(b, csv, labels, opt, "", root);
    if (with_valid) chest_detail::read_chexpert_rows(b, valid, labels, opt, "test", root);
    return b.finish(opt, read, chest_detail::view_name(opt.views));
}

/// MIMIC-CXR-JPG from its root folder.
inline dataset read_mimic_cxr(const std::filesystem::path& root, const chest_options& opt = {}, const read_options& read = {}) {
    const auto meta_file = chest_detail::table(root, "mimic-cxr-2.0.0-metadata.csv");
    const auto label_file = chest_detail::table(root, "mimic-cxr-2.0.0-chexpert.csv");
    check<data_error>(meta_file.has_value(), root.string(), ": no mimic-cxr-2.0.0-metadata.csv(.gz) (MIMIC-CXR-JPG's root folder?)");
    check<data_error>(label_file.has_value(), root.string(), ": no mimic-cxr-2.0.0-chexpert.csv(.gz)");
    // Labels per study.
    csv_table lt(*label_file);
    const int l_subject = lt.column("subject_id"), l_study = lt.column("study_id");
    std::vector<std::string> labels;
    std::vector<int> label_cols;
    for (int c = 0; c < int(lt.header().size()); ++c)
        if (c != l_subject && c != l_study) labels.push_back(lt.header()[std::size_t(c)]), label_cols.push_back(c);
    check<data_error>(!labels.empty(), lt.file(), ":1: no label columns");
    std::map<std::string, std::vector<label_state>> by_study;
    std::vector<std::string> f;
    while (lt.next(f)) {
        std::vector<label_state> s;
        for (std::size_t k = 0; k < labels.size(); ++k)
            s.push_back(chest_detail::parse_state(f[std::size_t(label_cols[k])], labels[k], lt.where()));
        check<data_error>(by_study.emplace(f[std::size_t(l_study)], std::move(s)).second, lt.where(), ": study ",
                          f[std::size_t(l_study)], " is listed twice");
    }
    // The official split per image, where the split file is there.
    std::map<std::string, std::string> split_of;
    if (const auto split_file = chest_detail::table(root, "mimic-cxr-2.0.0-split.csv")) {
        csv_table st(*split_file);
        const int s_dicom = st.column("dicom_id"), s_split = st.column("split");
        while (st.next(f)) {
            const auto& v = f[std::size_t(s_split)];
            check<data_error>(v == "train" || v == "validate" || v == "test", st.where(), ": split '", v,
                              "' is not train, validate or test");
            split_of[f[std::size_t(s_dicom)]] = v == "validate" ? "val" : v;
        }
    }
    chest_detail::builder b(root.string(), labels, opt.policy, "chexpert5");
    csv_table mt(*meta_file);
    const int m_dicom = mt.column("dicom_id"), m_subject = mt.column("subject_id"), m_study = mt.column("study_id"),
              m_view = mt.column("ViewPosition");
    const std::vector<label_state> unlabelled(labels.size(), label_state::missing);
    while (mt.next(f)) {
        const std::string where = mt.where();
        const auto &dicom = f[std::size_t(m_dicom)], &subject = f[std::size_t(m_subject)], &study = f[std::size_t(m_study)];
        check<data_error>(!dicom.empty() && subject.size() >= 2 && !study.empty(), where,
                          ": needs a dicom_id, a subject_id of 2+ digits and a study_id");
        const auto& v = f[std::size_t(m_view)];
        const bool frontal = v.rfind("AP", 0) == 0 || v.rfind("PA", 0) == 0;
        const bool lateral = v == "LATERAL" || v == "LL" || v == "XTABLE LATERAL";
        if ((opt.views == view_filter::frontal && !frontal) || (opt.views == view_filter::lateral && !lateral)) continue;
        const auto image = root / "files" / ("p" + subject.substr(0, 2)) / ("p" + subject) / ("s" + study) / (dicom + ".jpg");
        check<data_error>(chest_detail::is_file(image), where, ": image ", image.string(), " does not exist");
        const auto it = by_study.find(study);
        const auto split = split_of.find(dicom);
        b.add(image, where, subject, study, it == by_study.end() ? unlabelled : it->second, split == split_of.end() ? "" : split->second);
    }
    return b.finish(opt, read, chest_detail::view_name(opt.views));
}

/// NIH ChestX-ray14's Data_Entry_2017.csv (or its v2020 revision).
inline dataset read_nih(const std::filesystem::path& csv, const chest_options& opt = {}, const read_options& read = {}) {
    csv_table t(csv);
    const int image_col = t.column("Image Index"), finding_col = t.column("Finding Labels"), patient_col = t.column("Patient ID");
    const auto& labels = nih_findings();
    chest_detail::builder b(csv.string(), labels, opt.policy, "all");
    b.with_studies = false;  // one image per follow-up: bags are patients
    const auto dir = csv.parent_path();
    const auto images = chest_detail::nih_images(dir);
    std::set<std::string> test;
    if (chest_detail::is_file(dir / "test_list.txt")) test = chest_detail::name_list(dir / "test_list.txt");
    std::vector<std::string> f;
    std::vector<label_state> states(labels.size());
    while (t.next(f)) {
        const std::string where = t.where();
        const auto& name = f[std::size_t(image_col)];
        const auto& patient = f[std::size_t(patient_col)];
        check<data_error>(!name.empty(), where, ": empty Image Index");
        check<data_error>(!patient.empty(), where, ": empty Patient ID");
        std::fill(states.begin(), states.end(), label_state::negative);
        const auto& findings = f[std::size_t(finding_col)];
        if (findings != "No Finding") {
            for (std::size_t start = 0;;) {
                const auto bar = findings.find('|', start);
                const auto one = findings.substr(start, bar == std::string::npos ? std::string::npos : bar - start);
                const auto it = std::find(labels.begin(), labels.end(), one);
                check<data_error>(it != labels.end(), where, ": finding '", one, "' is not one of ChestX-ray14's 14 (or 'No Finding')");
                states[std::size_t(it - labels.begin())] = label_state::positive;
                if (bar == std::string::npos) break;
                start = bar + 1;
            }
        }
        if (opt.views == view_filter::lateral) continue;  // ChestX-ray14 is frontal (PA and AP) only
        const auto found = images.find(name);
        check<data_error>(found != images.end(), where, ": image ", name, " is in none of ", (dir / "images").string(), ", ",
                          (dir / "images_*" / "images").string(), ", ", dir.string());
        b.add(found->second, where, patient, "", states, test.empty() ? "" : (test.count(name) ? "test" : ""));
    }
    return b.finish(opt, read, chest_detail::view_name(opt.views));
}

/// The layout a spec's prefix names (`chexpert:`, `mimic-cxr:`, `nih:`); strips it from `spec`.
inline std::optional<chest_layout> take_layout_prefix(std::string& spec) {
    for (const auto& [prefix, layout] : {std::pair{"chexpert:", chest_layout::chexpert}, std::pair{"mimic-cxr:", chest_layout::mimic_cxr},
                                         std::pair{"nih:", chest_layout::nih}}) {
        const std::string p = prefix;
        if (spec.rfind(p, 0) == 0) {
            spec = spec.substr(p.size());
            return layout;
        }
    }
    return std::nullopt;
}

/// The layout of a path without a prefix, by what is there: a MIMIC-CXR root folder, or a CSV
/// whose header is CheXpert's (Path,...,Frontal/Lateral) or NIH's (Image Index,Finding Labels).
inline std::optional<chest_layout> detect_layout(const std::filesystem::path& p) {
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec))
        return chest_detail::table(p, "mimic-cxr-2.0.0-metadata.csv") ? std::optional(chest_layout::mimic_cxr) : std::nullopt;
    if (p.extension() != ".csv") return std::nullopt;
    std::ifstream in(p);
    std::string line;
    if (!in || !getline_bounded(in, line, default_max_line_bytes, p.string(), 1)) return std::nullopt;
    if (line.rfind("Path,Sex,Age,Frontal/Lateral", 0) == 0) return chest_layout::chexpert;
    if (line.rfind("Image Index,Finding Labels", 0) == 0) return chest_layout::nih;
    return std::nullopt;
}

inline dataset read_chest_xray(chest_layout layout, const std::filesystem::path& p, const chest_options& opt = {},
                               const read_options& read = {}) {
    switch (layout) {
        case chest_layout::chexpert: return read_chexpert(p, opt, read);
        case chest_layout::mimic_cxr: return read_mimic_cxr(p, opt, read);
        case chest_layout::nih: return read_nih(p, opt, read);
    }
    throw value_error("read_chest_xray: unknown layout");
}

}  // namespace micle::data
