# expect: error
import shutil

shutil.rmtree("@VICTIM_DIR@")
